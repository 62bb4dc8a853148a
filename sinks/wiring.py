"""Which sinks a run writes to, built from its options: one place for worker, demo and replay.

Every destination a user can switch on from the command line (``--chdb``,
``--clickhouse-url``, ``--alertmanager-url``, ``--webhook-url``, ``--grafana-url`` …) is a
field of :class:`OutputOptions`; :func:`build_sinks` turns the options into sink objects
that all follow :mod:`sinks.base`'s contract.  :func:`add_output_arguments` puts the same
flags on every command that runs the pipeline, and :func:`options_from_args` reads them
back, so ``riskwatch worker``, ``riskwatch demo`` and ``riskwatch replay`` stay in step.

>>> build_sinks(OutputOptions())
[]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

__all__ = ["OutputOptions", "add_output_arguments", "build_sinks", "options_from_args",
           "worker_flags"]


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """Where results go besides the run's own files/topics. Empty means nowhere."""

    chdb_path: str | None = None


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the output flags shared by ``worker``, ``demo`` and ``replay``."""
    parser.add_argument("--chdb", dest="chdb_path",
                        help="also store everything in embedded ClickHouse (chDB) at this path")


def options_from_args(args: argparse.Namespace) -> OutputOptions:
    """Read the flags added by :func:`add_output_arguments` (missing ones keep defaults)."""
    fields = {f.name for f in dataclasses.fields(OutputOptions)}
    return OutputOptions(**{name: getattr(args, name) for name in fields if hasattr(args, name)})


def worker_flags(options: OutputOptions) -> list[str]:
    """The same options as ``python -m streams.worker`` flags (the demo starts one)."""
    flags: list[str] = []
    if options.chdb_path:
        flags += ["--chdb", os.fspath(options.chdb_path)]
    return flags


def build_sinks(options: OutputOptions) -> list[Any]:
    """The sink objects for ``options``, not yet set up (the caller calls ``setup()``)."""
    sinks: list[Any] = []
    if options.chdb_path:
        from sinks.clickhouse import ChdbSink  # late: chdb is a 500 MB import
        sinks.append(ChdbSink(str(options.chdb_path)))
    return sinks
