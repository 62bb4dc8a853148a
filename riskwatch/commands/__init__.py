"""CLI subcommands that live in their own modules (see ``riskwatch.cli._COMMAND_MODULES``)."""
