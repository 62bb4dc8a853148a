"""How ``riskwatch`` parses its command line: argparse, with its errors put the project's way.

Plain ``parse_args`` gets two things wrong for a command with subcommands: a flag that
no parser knows is reported by the top parser (``usage: riskwatch [-h] COMMAND ...``,
with no command name), and only after every missing required argument has been named.
:func:`parse_command_line` names an unknown flag first, under the usage of the
(sub)command it was given to. The parser itself is ``riskwatch.cli.build_parser``.
"""

from __future__ import annotations

import argparse
from typing import Callable, NoReturn

__all__ = ["parse_command_line"]

#: ``riskwatch.cli.build_parser``: builds the riskwatch parser, each (sub)command's parser
#: of the given class. Passed in, not imported: the CLI imports this module.
ParserFactory = Callable[..., argparse.ArgumentParser]


def parse_command_line(build_parser: ParserFactory, argv: list[str] | None) -> argparse.Namespace:
    """``build_parser().parse_args(argv)``, but an unknown flag is the error reported
    (and exits 2) even when required arguments are missing too, and the message names
    the subcommand: ``usage: riskwatch replay ...``, ``(see riskwatch replay --help)``."""
    parser = build_parser()
    # Not parse_args (see the module docstring): the unknown flags first, then the rest.
    found = _unknown_arguments(build_parser, argv)
    if found is not None and found[1]:
        args, unknown = found
    else:
        args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = _command_parser(parser, args)
        command.error(f"unrecognized arguments: {' '.join(unknown)} (see {command.prog} --help)")
    return args


def _command_parser(parser: argparse.ArgumentParser,
                    args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` are for, e.g. ``riskwatch db migrate``'s."""
    while True:
        subs = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = subs.choices.get(getattr(args, subs.dest, None)) if subs else None
        if chosen is None:
            return parser
        parser = chosen


class _NotParsed(Exception):
    pass


class _UnknownArgumentFinder(argparse.ArgumentParser):
    """A parser that only looks for arguments no (sub)command knows (see
    :func:`_unknown_arguments`). Nothing is required in it, so its usage would show
    required flags as optional: on an error or ``-h`` it raises :class:`_NotParsed`
    instead of printing, and the real parser parses again and prints."""

    def error(self, message: str) -> NoReturn:
        raise _NotParsed(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _NotParsed(message)

    def print_help(self, file=None) -> None:
        pass

    def _print_message(self, message, file=None) -> None:
        pass   # --version prints through this; the real parser prints it once


def _unknown_arguments(build_parser: ParserFactory, argv: list[str] | None
                       ) -> tuple[argparse.Namespace, list[str]] | None:
    """``parse_known_args(argv)`` as if no argument were required; None if ``argv`` has
    another error (a bad value) or asks for ``-h``, which the real parser then reports.

    argparse checks required arguments before it hands the unknown ones up, so
    `riskwatch replay --bogus` named the missing ``events`` and ``--alerts-out`` first,
    and only once they were given said that ``--bogus`` is not a flag of replay."""
    finder = build_parser(parser_class=_UnknownArgumentFinder)
    parsers = [finder]
    for parser in parsers:   # the list grows as it is walked: every (sub)command's parser
        for action in parser._actions:
            action.required = False
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
        for group in parser._mutually_exclusive_groups:
            group.required = False
    try:
        return finder.parse_known_args(argv)
    except _NotParsed:
        return None
