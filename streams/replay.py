"""Replay: run the live pipeline's per-event code over a JSONL file, in event time.

Deterministic (same file, same settings -> same output bytes) and fast: the same
:class:`~streams.pipeline.Pipeline` the faust agents use, minus Kafka. Used by
``riskwatch replay`` for backtests and by tests as the oracle for the live worker.
"""

from __future__ import annotations

import gc
import itertools
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from riskwatch.errors import InputError
from streams.pipeline import Outputs, Pipeline

__all__ = ["ReplayInterrupted", "ReplayResult", "replay_file", "replay_lines"]

_DRAIN_EVERY = 20_000  # lines between hand-offs to sinks: bounds memory, amortises calls
# Cyclic-GC thresholds while replaying. The pipeline holds millions of long-lived
# containers (orders' lanes, parcels in flight, dedup sets) and allocates small ones per
# event and cohort; with the default (700, 10, 10) the collector rescans the old ones
# over and over (~8-15 % of a simulated week's CPU). Collections still run, less often.
_REPLAY_GC_THRESHOLDS = (50_000, 20, 100)


class ReplayResult(dict):
    """Final pipeline stats plus ``lines``, ``seconds`` and ``events_per_second``."""


class ReplayInterrupted(KeyboardInterrupt):
    """Ctrl-C during a replay, saying where: lines 1 to ``done`` were processed and their
    outputs handed to ``on_output``; lines ``done + 1`` to ``read`` (none if equal) were
    being processed, their outputs not handed over. The caller tells the user which of
    its outputs are therefore partial."""

    def __init__(self, done: int, read: int) -> None:
        super().__init__(done, read)
        self.done, self.read = done, read


def replay_lines(pipeline: Pipeline, lines: Iterable[bytes], *, source: str,
                 on_output: Callable[[Outputs], None],
                 progress: Callable[[int, float], None] | None = None) -> ReplayResult:
    """Feed ``lines`` (one message each) through ``pipeline``; hand outputs to ``on_output``.

    Blank lines are skipped and counted (``blank_lines``); every other line is an
    event object or an array of events, and bad ones become dead letters.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(*_REPLAY_GC_THRESHOLDS)
    try:
        return _replay_lines(pipeline, lines, source=source, on_output=on_output,
                             progress=progress)
    finally:
        gc.set_threshold(*thresholds)


def _replay_lines(pipeline: Pipeline, lines: Iterable[bytes], *, source: str,
                  on_output: Callable[[Outputs], None],
                  progress: Callable[[int, float], None] | None) -> ReplayResult:
    started = time.perf_counter()
    blank = 0
    n = 0
    next_report = 0.0
    lines = iter(lines)
    handed = 0   # lines whose outputs on_output has had: what a Ctrl-C leaves written
    try:
        while chunk := list(itertools.islice(lines, _DRAIN_EVERY)):
            first = n + 1
            n += len(chunk)
            if b"" not in map(bytes.strip, chunk):   # in C: the common case, no blank line
                pipeline.process_lines(chunk, source=source, first_offset=first)
            else:
                run: list[bytes] = []
                for offset, line in enumerate(chunk, first):
                    if line.strip():
                        run.append(line)
                        continue
                    blank += 1
                    if run:
                        pipeline.process_lines(run, source=source, first_offset=offset - len(run))
                        run = []
                if run:
                    pipeline.process_lines(run, source=source, first_offset=n + 1 - len(run))
                if not chunk[-1].strip():
                    continue   # (as it always was: no hand-off after a blank last line)
            if len(chunk) == _DRAIN_EVERY:
                on_output(pipeline.drain())
                handed = n
                if progress is not None:
                    now = time.perf_counter()
                    if now >= next_report:
                        progress(n, now - started)
                        next_report = now + 1.0
        pipeline.flush()
        on_output(pipeline.drain())
    except KeyboardInterrupt:
        raise ReplayInterrupted(handed, n) from None
    seconds = time.perf_counter() - started
    result = ReplayResult(pipeline.stats)
    result.update(lines=n, blank_lines=blank, seconds=round(seconds, 3),
                  events_per_second=round(result["events"] / seconds) if seconds else 0)
    if progress is not None:
        progress(n, seconds)
    return result


_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


def _readable_lines(handle, name: str) -> Iterable[bytes]:
    """The lines of ``handle``, refusing a gzip file and without a leading UTF-8 BOM.

    A gzip file would otherwise run to the end as "0 events" and hundreds of dead
    letters; a BOM (Windows editors write one) would make line 1 a dead letter. A read
    that fails (EIO, a directory on stdin) is an :class:`InputError`, not a traceback.
    """
    first = _read(handle.readline, name)
    if first.startswith(_GZIP_MAGIC):
        what, shown = ("the events on stdin look", "FILE") if name == "-" else (
            f"events file {name} looks", name)
        raise InputError(f"{what} gzip-compressed: decompress first, e.g. "
                         f"`zcat {shown} | riskwatch replay - ...`")
    if first.startswith(_BOM):
        first = first[len(_BOM):]
    return itertools.chain((first,) if first else (),
                           itertools.chain.from_iterable(_batches(handle, name)))


_READ_HINT = 1 << 20   # bytes of lines per read: the per-line work stays in C (chain)


def _batches(handle, name: str) -> Iterable[list[bytes]]:
    while batch := _read(lambda: handle.readlines(_READ_HINT), name):
        yield batch


def _read(read, name: str):
    try:
        return read()
    except OSError as exc:
        what = "the events on stdin" if name == "-" else f"events file {name}"
        raise InputError(f"cannot read {what}: {exc.strerror or exc}") from None


def replay_file(pipeline: Pipeline, path: str | Path, *, on_output: Callable[[Outputs], None],
                progress: Callable[[int, float], None] | None = None) -> ReplayResult:
    """Replay a JSONL file (``-`` for standard input).

    Raises :class:`InputError` for a gzip-compressed input or one that cannot be read; a
    leading UTF-8 BOM is dropped. A pipe or a character device (``<(...)``, a named pipe,
    ``/dev/null``) is read as a stream, like standard input.
    """
    if str(path) == "-":
        return replay_lines(pipeline, _readable_lines(sys.stdin.buffer, "-"), source="stdin",
                            on_output=on_output, progress=progress)
    p = Path(path)
    try:
        handle = p.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read events file {p}: {exc.strerror}") from None
    with handle:
        return replay_lines(pipeline, _readable_lines(handle, str(p)), source=f"file:{p.name}",
                            on_output=on_output, progress=progress)
