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
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from riskwatch.errors import ConfigError, SinkBackpressure, SinkError

__all__ = ["BatchingSink", "KINDS", "ListSink", "Record", "RetryPolicy", "Sink"]

logger = logging.getLogger(__name__)

#: Every record kind the pipeline emits; each maps to one table / file.
KINDS: frozenset[str] = frozenset(
    {"aggregates", "alerts", "complaints", "dead_letters", "events", "scores"})

Record = dict[str, Any]
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
    they hold clients or files, and :meth:`is_transient` to classify their errors.

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

    def __init__(self, *, batch_size: int = 10_000, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._batches: dict[BatchKey, list[Record]] = {}
        # Batches already written per (kind, token) since the last complete flush(): the
        # next batch of the same token gets a distinct, deterministic token suffix.
        self._written_batches: dict[BatchKey, int] = {}
        self._closed = False

    # -- hooks for subclasses -------------------------------------------------------------

    @abc.abstractmethod
    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        """Write one batch; raise on failure (nothing is dropped, the batch is retried)."""

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
            self._flush_keys([(kind, token)])

    def flush(self) -> None:
        self._flush_keys(list(self._batches))
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
        return dict(sorted(counts.items()))

    def drain(self) -> list[tuple[str, str | None, list[Record]]]:
        """Remove and return every buffered batch as ``(kind, token, records)``.

        The way out of a batch that fails permanently (for example a record the
        destination cannot parse): send it to the dead-letter topic, then go on.
        """
        drained = [(kind, token, records) for (kind, token), records in self._batches.items()]
        self._batches.clear()
        self._written_batches.clear()
        return drained

    # -- internals ------------------------------------------------------------------------

    def _new_batch(self, kind: str, token: str | None) -> list[Record] | None:
        """Start the batch of ``(kind, token)``, or return ``None`` for an ignored kind."""
        if kind not in KINDS:
            raise SinkError(f"unknown record kind {kind!r}; expected one of {sorted(KINDS)}")
        if self._closed:
            raise SinkError(f"{type(self).__name__} is closed; records added now would be lost")
        if not self.accepts(kind):
            return None
        batch: list[Record] = []
        self._batches[kind, token] = batch
        return batch

    def _flush_keys(self, keys: list[BatchKey]) -> None:
        started = time.monotonic()
        written: Counter[str] = Counter()
        batches = retries = 0
        failures: list[tuple[BatchKey, SinkError]] = []
        for key in keys:
            records = self._batches.get(key)
            if not records:
                self._batches.pop(key, None)
                continue
            kind, token = key
            n = self._written_batches.get(key, 0)
            batch_token = token if token is None or n == 0 else f"{token}#{n}"
            try:
                retries += self._write_with_retry(kind, records, batch_token)
            except SinkError as exc:
                failures.append((key, exc))  # keep the batch; other kinds may still land
                continue
            del self._batches[key]  # only now: the batch is in the destination
            self._written_batches[key] = n + 1
            written[kind] += len(records)
            batches += 1
        if batches:
            logger.info("%s flushed %d records in %d batches (%s) in %.3fs, %d retries",
                        type(self).__name__, sum(written.values()), batches,
                        " ".join(f"{k}={v}" for k, v in sorted(written.items())),
                        time.monotonic() - started, retries)
        if failures:
            first = failures[0][1]
            raise SinkError(f"{len(failures)} batch(es) not written and kept for the next "
                            f"flush; first: {first}") from first

    def _write_with_retry(self, kind: str, records: list[Record], token: str | None) -> int:
        """Write one batch; return the number of retries it took, or raise ``SinkError``."""
        attempt = 0
        while True:
            attempt += 1
            try:
                self.write(kind, records, token)
                return attempt - 1
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised as SinkError
                transient = self.is_transient(exc)
                limit = self.retry.max_transient_attempts if transient else self.retry.max_attempts
                what = f"{len(records)} {kind} records (token {token!r})"
                # One line: server messages span lines, and every log line should stand alone.
                error = " ".join(f"{type(exc).__name__}: {exc}".split())
                if limit is not None and attempt >= limit:
                    raise SinkError(f"{type(self).__name__}: writing {what} failed "
                                    f"{attempt} times: {error}") from exc
                delay = (exc.retry_after if isinstance(exc, SinkBackpressure)
                         else self.retry.delay(attempt))
                logger.warning("%s: writing %s failed (attempt %d, %s); retry in %.2fs",
                               type(self).__name__, what, attempt, error, delay)
                self._sleep(delay)


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
