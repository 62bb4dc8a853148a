"""The sink contract shared by every riskwatch output (modelled on quix-streams' ``BatchingSink``).

A sink receives *records* (plain dicts) of a *kind* and writes them somewhere durable::

    sink.setup()                                  # open clients/files, create tables (idempotent)
    sink.add("alerts", record, token="orders:0:1200-1300")
    sink.flush()                                  # write every buffered batch, or raise SinkError
    sink.close()                                  # flush + release

Delivery is **at-least-once**: the stream acks its source batch only after ``flush()``
returned, so after a crash the same records arrive again.  Sinks absorb that in two ways:

* ``token`` identifies the source range a record came from (``"topic:partition:first-last"``).
  Records are batched per ``(kind, token)`` and each batch is written with that token, so a
  destination that supports it (ClickHouse ``insert_deduplication_token``) drops a re-sent
  batch.  The same records in the same order always produce the same batches and tokens.
* Every record carries a deterministic id, so a destination keyed on it (ReplacingMergeTree)
  shows a re-delivered record once even when it arrives in a different batch.

Records may also arrive as a **column block** (:meth:`Sink.add_columns`): a mapping of
column name to a list or 1-D numpy array, all of one length, whose row ``i`` is the record
``{name: column[i]}``.  A producer that holds its output as arrays (the pipeline's bucket
close) hands them over without building a dict per row, and a columnar destination
(:class:`~sinks.clickhouse.server_sink.ClickHouseServerSink`) inserts them without taking
them apart.  Every other sink gets the block's records through ``add()``, so a block and
the same records added one by one leave the same destination contents.  Blocks are
batched, tokened and retried exactly like records.

``flush()`` retries *inside* itself with capped exponential backoff: transient errors
(timeouts, lost connections, :class:`~riskwatch.errors.SinkBackpressure`) are retried until
the write lands, other errors up to ``RetryPolicy.max_attempts`` and then raised as
:class:`~riskwatch.errors.SinkError`.  Buffers are cleared only after a batch was written,
so nothing unwritten is dropped: a failed flush can simply be called again.

Examples
--------
:class:`ListSink` is an in-memory test fake showing the contract:

>>> sink = ListSink(batch_size=2)
>>> with sink:                                    # setup() ... close()
...     sink.add("alerts", {"alert_id": "a1"}, token="orders:0:0-9")
...     sink.add("alerts", {"alert_id": "a2"}, token="orders:0:0-9")  # batch full: written now
...     sink.add("complaints", {"complaint_id": "c1"})
...     sink.pending()
{'complaints': 1}
>>> [(kind, [r.get("alert_id") or r["complaint_id"] for r in rows], token)
...  for kind, rows, token in sink.batches]
[('alerts', ['a1', 'a2'], 'orders:0:0-9'), ('complaints', ['c1'], None)]

A write that fails transiently is retried inside ``flush()`` until it lands:

>>> class Flaky(ListSink):
...     failures = 2
...     def write(self, kind, records, token):
...         if self.failures:
...             self.failures -= 1
...             raise TimeoutError("server busy")
...         super().write(kind, records, token)
>>> flaky = Flaky(sleep=lambda seconds: None)     # no real waiting in examples
>>> flaky.add("scores", {"merchant_id": "m1"})
>>> flaky.flush()
>>> len(flaky.batches), flaky.pending()
(1, {})

A column block is its records transposed; a sink without a columnar path receives them
one by one:

>>> rows = ListSink()
>>> rows.add_columns("scores", {"merchant_id": ["m1", "m2"], "score": [87.5, 60.0]},
...                  token="scores:0:0-1")
>>> rows.flush()
>>> rows.batches
[('scores', [{'merchant_id': 'm1', 'score': 87.5}, {'merchant_id': 'm2', 'score': 60.0}], 'scores:0:0-1')]
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import itertools
import logging
import operator
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from riskwatch.errors import ConfigError, SinkBackpressure, SinkError

__all__ = ["BatchingSink", "ColumnBlock", "KINDS", "ListSink", "Record", "RetryPolicy", "Sink",
           "block_of_records", "block_rows", "check_block", "records_of_block"]

logger = logging.getLogger(__name__)

#: Every record kind the pipeline emits; each maps to one table / file.
KINDS: frozenset[str] = frozenset(
    {"aggregates", "alerts", "complaints", "dead_letters", "events", "scores"})

Record = dict[str, Any]
#: Column name -> values (a list, tuple or 1-D numpy array); every column of one length.
ColumnBlock = Mapping[str, Sequence[Any]]
BatchKey = tuple[str, "str | None"]

# OSError numbers worth waiting out (full disk, temporarily unavailable, interrupted I/O);
# anything else (permission denied, bad path) will not fix itself by retrying.
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.EDQUOT})


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How ``flush()`` retries a failed write.

    Parameters
    ----------
    initial_delay
        Seconds to wait after the first failure.
    max_delay
        Cap of the exponential backoff.
    multiplier
        Growth factor of the delay between attempts.
    jitter
        Fraction of random spread (0.2 = each delay is scaled by a factor in [0.8, 1.0]) so
        that many workers hitting one server do not retry in lockstep.
    max_attempts
        Attempts for a *permanent* error (bad data, bad SQL) before ``SinkError`` is raised.
    max_transient_attempts
        Attempts for a *transient* error; ``None`` (the default) retries until the write
        lands, which is the backpressure the streaming pipeline wants.

    Examples
    --------
    >>> policy = RetryPolicy(initial_delay=1.0, max_delay=5.0, jitter=0.0)
    >>> [policy.delay(n) for n in range(1, 6)]
    [1.0, 2.0, 4.0, 5.0, 5.0]
    """

    initial_delay: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int = 3
    max_transient_attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay <= self.max_delay:
            raise ConfigError("RetryPolicy needs 0 < initial_delay <= max_delay "
                              f"(got {self.initial_delay}, {self.max_delay})")
        if self.multiplier < 1:
            raise ConfigError(f"RetryPolicy.multiplier must be >= 1 (got {self.multiplier})")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"RetryPolicy.jitter must be in [0, 1) (got {self.jitter})")
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be >= 1 (got {self.max_attempts})")
        if self.max_transient_attempts is not None and self.max_transient_attempts < 1:
            raise ConfigError("RetryPolicy.max_transient_attempts must be >= 1 or None "
                              f"(got {self.max_transient_attempts})")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * random.random())


def check_block(kind: str, columns: ColumnBlock) -> int:
    """The number of rows of a column block; ``SinkError`` if it is not one.

    >>> check_block("scores", {"merchant_id": ["m1", "m2"], "score": (1.0, 2.0)})
    2
    >>> check_block("scores", {"merchant_id": ["m1", "m2"], "score": [1.0]})
    Traceback (most recent call last):
    riskwatch.errors.SinkError: scores column block: columns of different lengths (merchant_id: 2, score: 1)
    """
    lengths: dict[str, int] = {}
    for name, values in columns.items():
        if isinstance(values, str | bytes) or getattr(values, "ndim", 1) != 1:
            raise SinkError(f"{kind} column block: column {name!r} must be a list, tuple or "
                            f"1-D array, not {type(values).__name__}")
        try:
            lengths[name] = len(values)
        except TypeError:
            raise SinkError(f"{kind} column block: column {name!r} must be a list, tuple or "
                            f"1-D array, not {type(values).__name__}") from None
    if len(set(lengths.values())) > 1:
        raise SinkError(f"{kind} column block: columns of different lengths ("
                        + ", ".join(f"{k}: {v}" for k, v in lengths.items()) + ")")
    return next(iter(lengths.values()), 0)


def _as_list(values: Sequence[Any]) -> list[Any]:
    """A column as a list of plain Python values (numpy arrays through ``tolist()``)."""
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist is not None else list(values)


def records_of_block(columns: ColumnBlock) -> list[Record]:
    """The records of a column block: row ``i`` is ``{name: column[i]}``, plain Python values.

    >>> import numpy as np
    >>> records_of_block({"merchant_id": ["m1", "m2"], "score": np.array([87.5, 60.0])})
    [{'merchant_id': 'm1', 'score': 87.5}, {'merchant_id': 'm2', 'score': 60.0}]
    """
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*(_as_list(columns[n]) for n in names))]


def block_of_records(records: Sequence[Record]) -> dict[str, list[Any]]:
    """Records as one column block: every key of any record, ``None`` where one lacks it.

    >>> block_of_records([{"merchant_id": "m1", "score": 87.5}, {"merchant_id": "m2"}])
    {'merchant_id': ['m1', 'm2'], 'score': [87.5, None]}
    >>> block_of_records([{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    {'a': [1, 3], 'b': [2, None], 'c': [None, 4]}
    """
    if records and len(set(map(len, records))) == 1:
        # The pipeline's records of one kind share their keys: then the first record's
        # keys are everyone's, unless one lacks a key (a KeyError, below).
        try:
            return {name: list(map(operator.itemgetter(name), records)) for name in records[0]}
        except KeyError:
            pass
    names = dict.fromkeys(itertools.chain.from_iterable(records))
    return {name: [r.get(name) for r in records] for name in names}


def block_rows(blocks: Sequence[tuple[ColumnBlock, int]], start: int, stop: int
               ) -> dict[str, Sequence[Any]]:
    """Rows ``start:stop`` of the blocks taken end to end, as one block.

    A column missing from a block is ``None`` in its rows (as a key missing from a record).
    Columns stay numpy arrays when every part is one, else become lists.

    >>> a, b = {"x": [1, 2], "y": ["a", "b"]}, {"x": [3]}
    >>> block_rows([(a, 2), (b, 1)], 1, 3)
    {'x': [2, 3], 'y': ['b', None]}
    """
    names = list(dict.fromkeys(itertools.chain.from_iterable(columns for columns, _ in blocks)))
    if len(blocks) == 1 and start == 0 and stop == blocks[0][1]:
        return dict(blocks[0][0])  # the whole of one block: its columns, not copies
    parts: dict[str, list[Sequence[Any]]] = {name: [] for name in names}
    offset = 0
    for columns, n in blocks:
        lo, hi = max(start - offset, 0), min(stop - offset, n)
        if lo < hi:
            for name in names:
                values = columns.get(name)
                parts[name].append([None] * (hi - lo) if values is None else values[lo:hi])
        offset += n
    out: dict[str, Sequence[Any]] = {}
    for name, pieces in parts.items():
        if len(pieces) == 1:
            out[name] = pieces[0]
        elif pieces and all(hasattr(p, "dtype") for p in pieces):
            import numpy as np

            out[name] = np.concatenate(pieces)
        else:
            out[name] = list(itertools.chain.from_iterable(map(_as_list, pieces)))
    return out


class Sink(abc.ABC):
    """The contract of every riskwatch sink; see the module docstring.

    Sinks are used from one thread; a caller on an event loop runs ``flush()`` in an
    executor, because it blocks while it retries (that blocking is the backpressure).
    """

    @abc.abstractmethod
    def setup(self) -> None:
        """Open clients or files and create tables. Calling it again does nothing."""

    @abc.abstractmethod
    def add(self, kind: str, record: Record, *, token: str | None = None) -> None:
        """Buffer ``record`` of ``kind``; ``token`` names the source range it came from.

        The record is kept by reference until it is written: do not mutate it afterwards.
        A sink may write here when a batch is full, and then raises like :meth:`flush`.
        """

    def add_columns(self, kind: str, columns: ColumnBlock, *, token: str | None = None) -> None:
        """Buffer the records of a column block (see the module docstring) of ``kind``.

        The same as ``add()`` of each of its records in row order, which is what this
        default does; a columnar sink keeps the block whole.  Like records, the block and
        its columns are kept by reference until written: do not mutate them afterwards.
        Raises ``SinkError`` for columns of different lengths or a column that is not a
        sequence.
        """
        check_block(kind, columns)
        for record in records_of_block(columns):
            self.add(kind, record, token=token)

    def add_records(self, kind: str, records: Sequence[Record], *,
                    token: str | None = None) -> None:
        """Buffer ``records`` of one kind: ``add()`` of each, which is what this default
        does; a columnar sink takes them as one column block (no ``add()`` per record, no
        dict taken apart per row), the records' own ``columns`` block when they carry one
        (``streams.aggregate_rows.AggregateRows``).  The same contents either way.

        >>> rows = ListSink()
        >>> rows.add_records("scores", [{"merchant_id": "m1"}, {"merchant_id": "m2"}])
        >>> rows.pending()
        {'scores': 2}
        """
        for record in records:
            self.add(kind, record, token=token)

    @abc.abstractmethod
    def flush(self) -> None:
        """Write every buffered record, retrying inside; raise ``SinkError`` if it cannot."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush, then release clients and files. Calling it again does nothing."""

    def __enter__(self) -> Sink:
        self.setup()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BatchingSink(Sink):
    """A sink that buffers records per ``(kind, token)`` and writes them in batches.

    Subclasses implement :meth:`write`, and override :meth:`setup` / :meth:`teardown` when
    they hold clients or files, and :meth:`is_transient` to classify their errors.  A
    destination that takes columns sets :attr:`columnar` and implements
    :meth:`write_columns`: column blocks are then buffered whole (per ``(kind, token)``,
    apart from that key's records), cut at the same ``batch_size`` rows and tokened by the
    same rule, so a block and its records added one by one make the same batches.

    Parameters
    ----------
    batch_size
        A ``(kind, token)`` buffer is written as soon as it holds this many records. The
        split depends only on that buffer, so a replayed source range is cut into the same
        batches; batches after the first get the token ``f"{token}#{n}"``.
    retry
        Backoff and attempt limits for :meth:`flush`.
    sleep
        Called with the number of seconds to wait between attempts (tests pass a recorder).
    """

    #: Kinds this sink writes; ``add()`` rejects anything outside :data:`KINDS`.
    kinds: ClassVar[frozenset[str]] = KINDS
    #: Whether :meth:`write_columns` writes column blocks as they are (else rows via add()).
    columnar: ClassVar[bool] = False
    #: Called with the one-line error (made safe: no personal data, no URL password) of
    #: every failed write that will be retried (the live worker's SinkFeeder counts them
    #: and shows the stall on /stats/).
    on_retry: Callable[[str], None] | None = None

    def __init__(self, *, batch_size: int = 10_000, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._batches: dict[BatchKey, list[Record]] = {}
        # Column blocks per (kind, token) of a columnar sink: [(block, rows), ...].
        self._blocks: dict[BatchKey, list[tuple[ColumnBlock, int]]] = {}
        # Batches already written per (kind, token) since the last complete flush(): the
        # next batch of the same token gets a distinct, deterministic token suffix.
        self._written_batches: dict[BatchKey, int] = {}
        self._closed = False

    # -- hooks for subclasses -------------------------------------------------------------

    @abc.abstractmethod
    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        """Write one batch; raise on failure (nothing is dropped, the batch is retried)."""

    def write_columns(self, kind: str, columns: dict[str, Sequence[Any]], rows: int,
                      token: str | None) -> None:
        """Write one batch given as columns (only called when :attr:`columnar` is set).

        ``columns`` holds every column of the batch's blocks (``None`` where a block had
        none), ``rows`` long each; raise on failure, as :meth:`write`.
        """
        raise NotImplementedError(f"{type(self).__name__} sets columnar but has no write_columns")

    def setup(self) -> None:
        """Open clients or files; the default has nothing to open."""

    def teardown(self) -> None:
        """Release clients or files; called once by :meth:`close` after the final flush."""

    def accepts(self, kind: str) -> bool:
        """Whether records of ``kind`` are written (others are silently ignored)."""
        return kind in self.kinds

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` may go away by waiting (then it is retried until the write lands)."""
        if isinstance(exc, SinkBackpressure | TimeoutError | ConnectionError):
            return True
        if isinstance(exc, SinkError):
            return False
        return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS

    # -- the contract ---------------------------------------------------------------------

    def add(self, kind: str, record: Record, *, token: str | None = None) -> None:
        # The hot path of every record: checks run only when a batch is started.
        batch = self._batches.get((kind, token))
        if batch is None:
            batch = self._new_batch(kind, token)
            if batch is None:
                return
        batch.append(record)
        if len(batch) >= self.batch_size:
            self._flush_keys([(kind, token)], include_blocks=False)

    def add_records(self, kind: str, records: Sequence[Record], *,
                    token: str | None = None) -> None:
        if not self.columnar or len(records) < 2:
            super().add_records(kind, records, token=token)
            return
        columns = getattr(records, "columns", None)  # the pipeline's aggregates: kept
        self.add_columns(kind, block_of_records(records) if columns is None else columns,
                         token=token)               # as columns, handed over as they are

    def add_columns(self, kind: str, columns: ColumnBlock, *, token: str | None = None) -> None:
        if not self.columnar:
            super().add_columns(kind, columns, token=token)
            return
        rows = check_block(kind, columns)
        blocks = self._blocks.get((kind, token))
        if blocks is None:
            if self._new_batch(kind, token, columnar=True) is None:
                return
            blocks = self._blocks[kind, token]
        if rows:
            blocks.append((columns, rows))
            if sum(n for _, n in blocks) >= self.batch_size:
                self._flush_keys([(kind, token)], include_records=False,
                                 whole_batches_only=True)

    def flush(self) -> None:
        self._flush_keys(list(dict.fromkeys([*self._batches, *self._blocks])))
        # Everything buffered is written: the source batch is complete, so a re-delivery
        # of the same token starts again at batch 0 and reproduces the same tokens.
        self._written_batches.clear()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self.teardown()

    def pending(self) -> dict[str, int]:
        """Number of buffered (unwritten) records per kind."""
        counts: Counter[str] = Counter()
        for (kind, _token), records in self._batches.items():
            counts[kind] += len(records)
        for (kind, _token), blocks in self._blocks.items():
            counts[kind] += sum(n for _, n in blocks)
        return dict(sorted(counts.items()))

    def drain(self) -> list[tuple[str, str | None, list[Record]]]:
        """Remove and return every buffered batch as ``(kind, token, records)``.

        The way out of a batch that fails permanently (for example a record the
        destination cannot parse): send it to the dead-letter topic, then go on.  Buffered
        column blocks come out as their records.
        """
        drained = [(kind, token, records) for (kind, token), records in self._batches.items()]
        for (kind, token), blocks in self._blocks.items():
            rows = sum(n for _, n in blocks)
            if rows:
                drained.append((kind, token, records_of_block(block_rows(blocks, 0, rows))))
        self._batches.clear()
        self._blocks.clear()
        self._written_batches.clear()
        return drained

    # -- internals ------------------------------------------------------------------------

    def _new_batch(self, kind: str, token: str | None, *, columnar: bool = False
                   ) -> list[Record] | None:
        """Start the batch of ``(kind, token)``, or return ``None`` for an ignored kind."""
        if kind not in KINDS:
            raise SinkError(f"unknown record kind {kind!r}; expected one of {sorted(KINDS)}")
        if self._closed:
            raise SinkError(f"{type(self).__name__} is closed; records added now would be lost")
        if not self.accepts(kind):
            return None
        batch: list[Record] = []
        if columnar:
            self._blocks[kind, token] = []
        else:
            self._batches[kind, token] = batch
        return batch

    def _flush_keys(self, keys: list[BatchKey], *, include_records: bool = True,
                    include_blocks: bool = True, whole_batches_only: bool = False) -> None:
        """Write the buffered records and/or column blocks of ``keys``.

        ``whole_batches_only``: write column blocks only in full ``batch_size`` batches and
        keep the rest buffered (what ``add()`` does for records, batch by batch).
        """
        started = time.monotonic()
        written: Counter[str] = Counter()
        batches = retries = 0
        failures: list[tuple[BatchKey, SinkError]] = []
        for key in keys:
            kind, token = key
            records = self._batches.get(key) if include_records else None
            if records:
                try:
                    retries += self._write_with_retry(
                        kind, len(records), self._next_token(key),
                        lambda t, kind=kind, records=records: self.write(kind, records, t))
                except SinkError as exc:
                    failures.append((key, exc))  # keep the batch; other kinds may still land
                    continue  # and the key's blocks: its batches keep their order (tokens)
                else:
                    del self._batches[key]  # only now: the batch is in the destination
                    self._written_batches[key] = self._written_batches.get(key, 0) + 1
                    written[kind] += len(records)
                    batches += 1
            elif include_records and key in self._batches:
                del self._batches[key]
            pending = self._blocks.get(key) if include_blocks else None
            if pending is None:
                continue
            try:
                done, retried = self._write_blocks(key, pending, whole_batches_only)
            except SinkError as exc:
                failures.append((key, exc))
                continue
            finally:
                if not self._blocks.get(key):
                    self._blocks.pop(key, None)
            retries += retried
            written[kind] += sum(done)
            batches += len(done)
        if batches:
            logger.info("%s flushed %d records in %d batches (%s) in %.3fs, %d retries",
                        type(self).__name__, sum(written.values()), batches,
                        " ".join(f"{k}={v}" for k, v in sorted(written.items())),
                        time.monotonic() - started, retries)
        if failures:
            first = failures[0][1]
            raise SinkError(f"{len(failures)} batch(es) not written and kept for the next "
                            f"flush; first: {first}") from first

    def _next_token(self, key: BatchKey) -> str | None:
        """The token of the next batch written for ``key`` (``#n`` after the first)."""
        token, n = key[1], self._written_batches.get(key, 0)
        return token if token is None or n == 0 else f"{token}#{n}"

    def _write_blocks(self, key: BatchKey, blocks: list[tuple[ColumnBlock, int]],
                      whole_batches_only: bool) -> tuple[list[int], int]:
        """Write ``key``'s blocks in batches of ``batch_size`` rows; return (rows per batch
        written, retries).  Written rows leave ``blocks`` (in place) even when a later
        batch fails, so exactly the unwritten rows stay buffered."""
        kind = key[0]
        total = sum(n for _, n in blocks)
        done: list[int] = []
        retries = written = 0
        try:
            while written < total:
                stop = min(written + self.batch_size, total)
                if whole_batches_only and stop - written < self.batch_size:
                    break
                columns, rows = block_rows(blocks, written, stop), stop - written
                retries += self._write_with_retry(
                    kind, rows, self._next_token(key),
                    lambda t, columns=columns, rows=rows: self.write_columns(kind, columns,
                                                                              rows, t))
                self._written_batches[key] = self._written_batches.get(key, 0) + 1
                done.append(rows)
                written = stop
        finally:
            if written:
                blocks[:] = ([(block_rows(blocks, written, total), total - written)]
                             if written < total else [])
        return done, retries

    def _write_with_retry(self, kind: str, rows: int, token: str | None,
                          write: Callable[[str | None], None]) -> int:
        """Write one batch; return the number of retries it took, or raise ``SinkError``."""
        attempt = 0
        while True:
            attempt += 1
            try:
                write(token)
                return attempt - 1
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised as SinkError
                transient = self.is_transient(exc)
                limit = self.retry.max_transient_attempts if transient else self.retry.max_attempts
                what = f"{rows} {kind} records" + (f" (token {token!r})" if token else "")
                # One line (server messages span lines, and every log line should stand
                # alone), made safe: a server's parse error may quote the row it choked on,
                # a library's error the URL with its password (streams.sink_stall.safe_error).
                error = _safe_error(f"{type(exc).__name__}: {exc}")
                if limit is not None and attempt >= limit:
                    raise SinkError(f"{type(self).__name__}: writing {what} failed "
                                    f"{attempt} times: {error}") from exc
                delay = (exc.retry_after if isinstance(exc, SinkBackpressure)
                         else self.retry.delay(attempt))
                logger.warning("%s: writing %s failed (attempt %d, %s); retry in %.2fs",
                               type(self).__name__, what, attempt, error, delay)
                if self.on_retry is not None:
                    self.on_retry(error)
                self._sleep(delay)


def _safe_error(text: str) -> str:
    # Imported when a write fails, not at start: sinks are imported by code that never
    # loads the pipeline's text tools.
    from streams.sink_stall import safe_error
    return safe_error(text)


class ListSink(BatchingSink):
    """Test fake: keeps every written batch in :attr:`batches` as ``(kind, records, token)``.

    Use it in unit tests of code that produces records, instead of a real destination.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[tuple[str, list[Record], str | None]] = []

    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        self.batches.append((kind, list(records), token))

    def records(self, kind: str) -> list[Record]:
        """Every written record of ``kind``, in write order."""
        return [r for k, rows, _token in self.batches if k == kind for r in rows]
