"""Checkpoints of the live pipeline: its whole state plus the input positions it reflects.

Why: the :class:`~streams.pipeline.Pipeline` keeps open buckets, detector baselines,
dedup sets, firing alerts, the complaint desk and merchant scores in memory. faust
commits input offsets after the sinks flushed, so after a ``kill -9`` a worker with
empty state would resume *after* everything it forgot, and its alerts would differ
from what replay says. With checkpoints the restarted worker loads the state and
**seeks every input partition back to the position that state reflects**; the events
after the checkpoint are processed once more, into the restored state, in the same
order, so the state (and every output) is what it would have been without the crash.

The design, concretely (at-least-once + deterministic state + idempotent outputs):

- **What**: one pickle of ``{pipeline, positions, pending dead letters, clock}``,
  taken on the event loop between two messages (after the pipeline's outputs were
  drained and handed to the producer and the sinks), so state and positions agree.
  ``positions`` is *topic/partition -> next offset to read*, for every input and
  feedback partition the worker owns.
- **When**: every ``every_seconds`` or ``every_messages`` input messages (whichever
  first), and at a clean stop. A clean stop with checkpoints does *not* close the open
  buckets (``flush_on_stop``): they are in the checkpoint and close normally after the
  restart, so a rolling restart changes no output.
- **Durable outputs first**: before the file is written, the producer and the sinks
  are flushed, so every output produced before the snapshot has landed; a checkpoint
  never claims outputs that a crash could still lose.
- **Atomic**: written to a temp file in the same directory, fsynced, renamed, and
  the directory fsynced. A header (format, Python, riskwatch and state versions, a
  digest of the pipeline settings, positions, SHA-256 and size of the body) precedes
  the pickle. The newest ``keep`` files are kept.
- **Restore**: when the worker is assigned partitions it did not own, it loads the
  newest checkpoint; a corrupt file (bad magic, checksum or truncated) is skipped with
  a warning and the previous one is used; an incompatible one (other versions or
  settings, or a pickle that no longer matches the code) is reported with one error
  line and the worker starts fresh from the committed offsets. No checkpoint: start
  fresh too.
- **Seek**: faust seeks every partition to its committed offset when it resumes after a
  rebalance (``Consumer.perform_seek`` -> ``seek_to_committed``). :func:`attach` wraps
  that call so each partition is then moved to the position the in-memory state
  reflects; faust's own commit logic then commits only offsets beyond what it had.
  faust resumes fetching at the committed offset a moment before that seek, and a seek
  delivers again what was handed out before it: the offset gate
  (:mod:`streams.offset_gate`, :meth:`LiveCheckpointer.admit`) lets the state take
  exactly the next offset of each partition, skips redeliveries and seeks back when
  deliveries run ahead. Committed offsets may run ahead of the checkpoint or behind it;
  the restart seeks by the checkpoint, not by the commit.
- **Outputs after a restart**: the records produced between the checkpoint and the
  crash are produced again, with the same deterministic ``alert_id``/``fingerprint``
  (and the same aggregate keys), so consumers deduplicate on
  ``alert_id + status + ts`` and ReplacingMergeTree tables collapse the rows:
  at-least-once delivery, exactly-once *effect*.

A checkpoint directory may be shared by the workers of one consumer group (a hot
standby takes over from the active worker's last checkpoint). Only a worker that owns
partitions writes. The pickle is trusted input (CWE-502): the directory must only be
writable by the workers.

>>> import tempfile
>>> from streams.pipeline import Pipeline
>>> with tempfile.TemporaryDirectory() as tmp:
...     store = CheckpointStore(tmp, settings_digest="s1")
...     _ = store.write(encode_state(Pipeline(), {("orders", 0): 42}), {("orders", 0): 42})
...     loaded = store.load_latest()
>>> loaded.positions, type(loaded.pipeline).__name__
({('orders', 0): 42}, 'Pipeline')
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import io
import json
import logging
import marshal
import os
import pickle
import sys
import tempfile
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riskwatch.errors import CheckpointError, ConfigError
from streams.offset_gate import ADMIT, AHEAD, OffsetGate

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

__all__ = ["Checkpoint", "CheckpointStore", "LiveCheckpointer", "add_fault_tolerance_arguments",
           "attach", "encode_state", "fault_tolerance_options", "settings_digest"]

logger = logging.getLogger(__name__)

MAGIC = b"RISKWATCH-CHECKPOINT\n"
FORMAT = 1
#: Bump when the pipeline's state layout changes in a way pickle cannot notice.
STATE_VERSION = 10  # 2: the intent-mix stage (streams.mix); 3: delivery tracked per cohort;
                    # 4: intent-mix bank column-major (+ lagged baseline), overdue per-row arrays
                    # 5: orders counted per slice (repeat complaints count once)
                    # 6: learned promotion effects (SliceScorer.promotions)
                    # 7: merchant scores, shop surge and exposures keep numpy rows (+ name order)
                    # 8: alert episodes keep the bucket they paged in (AlertEpisode.fired_bucket)
                    # 9: the complaint desk folds a ticket's updates in event time
                    # 10: one order map of (category, merchant) (Pipeline._order_profile)
_PREFIX, _SUFFIX = "checkpoint-", ".ckpt"

Positions = Mapping[tuple[str, int], int]

#: What the settings digest covers, for the error of a checkpoint written with others.
_SETTINGS_HINT = ("(other pipeline settings: --bucket-seconds, --allowed-lateness-seconds, "
                  "--max-time-jump-seconds, the promotion flags, or their RISKWATCH_* variables)")


def settings_digest(settings: Any) -> str:
    """A short digest of the pipeline settings: a checkpoint only fits the same settings.

    >>> from riskwatch.settings import PipelineSettings
    >>> settings_digest(PipelineSettings()) == settings_digest(PipelineSettings())
    True
    >>> settings_digest(PipelineSettings()) == settings_digest(PipelineSettings(bucket_seconds=60))
    False
    """
    text = repr(dataclasses.asdict(settings)) if dataclasses.is_dataclass(settings) else repr(settings)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _versions() -> dict[str, Any]:
    try:
        from importlib.metadata import version
        riskwatch = version("riskwatch")
    except Exception:  # noqa: BLE001 - not installed as a package (tests from a checkout)
        riskwatch = "unknown"
    return {"format": FORMAT, "state": STATE_VERSION, "riskwatch": riskwatch,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


# -- pickling -------------------------------------------------------------------------------

def _function_from_code(code: bytes) -> types.FunctionType:
    return types.FunctionType(marshal.loads(code), {})


class _StatePickler(pickle.Pickler):
    """pickle plus the pipeline's generated slice-key builders (:mod:`streams.slicing`
    compiles them with ``exec``, so pickle cannot find them by name). Their code is
    stored with ``marshal``, which is tied to the Python version the header records."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType) and obj.__code__.co_filename == "<slice keys>":
            return _function_from_code, (marshal.dumps(obj.__code__),)
        return NotImplemented


def encode_state(pipeline: Pipeline, positions: Positions, *, pending_letters: list | None = None,
                 wall: float | None = None) -> bytes:
    """Pickle the pipeline with the positions (next offsets) it reflects."""
    buffer = io.BytesIO()
    _StatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({
        "pipeline": pipeline, "positions": dict(positions),
        "pending_letters": list(pending_letters or ()), "wall": wall})
    return buffer.getvalue()


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint."""

    pipeline: Pipeline
    positions: dict[tuple[str, int], int]   # next offset to read per (topic, partition)
    pending_letters: list[dict]
    wall: float | None
    sequence: int
    created: float
    path: Path


# -- files ----------------------------------------------------------------------------------

class CheckpointStore:
    """Numbered checkpoint files in one directory: atomic writes, newest-valid reads.

    ``settings_digest`` guards against loading a state built with other settings.
    """

    def __init__(self, directory: str | os.PathLike[str], *, settings_digest: str,
                 keep: int = 3) -> None:
        self.directory = Path(directory)
        self.settings_digest = settings_digest
        self.keep = max(keep, 2)   # the previous one is the fallback for a corrupt newest
        self.directory.mkdir(parents=True, exist_ok=True)

    def paths(self) -> list[tuple[int, Path]]:
        """Existing checkpoint files, newest first."""
        found = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            try:
                found.append((int(path.name[len(_PREFIX):-len(_SUFFIX)]), path))
            except ValueError:
                continue
        return sorted(found, reverse=True)

    def write(self, body: bytes, positions: Positions) -> Path:
        """Write a checkpoint atomically (temp + fsync + rename + dir fsync); prune old ones."""
        existing = self.paths()
        sequence = existing[0][0] + 1 if existing else 1
        header = {**_versions(), "settings": self.settings_digest, "sequence": sequence,
                  "created": time.time(), "size": len(body),
                  "sha256": hashlib.sha256(body).hexdigest(),
                  "positions": {f"{t}\x00{p}": o for (t, p), o in sorted(positions.items())}}
        path = self.directory / f"{_PREFIX}{sequence:012d}{_SUFFIX}"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC)
                handle.write(json.dumps(header).encode() + b"\n")
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with _suppress():
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for _, old in self.paths()[self.keep:]:
            with _suppress():
                old.unlink()
        return path

    def read(self, path: Path) -> Checkpoint:
        """Load one file. Raises :class:`CheckpointError` (``corrupt`` or ``incompatible``)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{path.name}: cannot read ({exc.strerror})", corrupt=True) from None
        if not data.startswith(MAGIC):
            raise CheckpointError(f"{path.name}: not a riskwatch checkpoint", corrupt=True)
        end = data.find(b"\n", len(MAGIC))
        try:
            header = json.loads(data[len(MAGIC):end])
        except ValueError:
            raise CheckpointError(f"{path.name}: unreadable header", corrupt=True) from None
        body = data[end + 1:]
        if len(body) != header.get("size") or hashlib.sha256(body).hexdigest() != header.get("sha256"):
            raise CheckpointError(f"{path.name}: truncated or damaged (checksum mismatch)", corrupt=True)
        ours = {**_versions(), "settings": self.settings_digest}
        differ = [f"{k} {header.get(k)!r} != {v!r}" for k, v in ours.items() if header.get(k) != v]
        if header.get("settings") != self.settings_digest:   # a digest: say what it covers
            differ[-1] += f" {_SETTINGS_HINT}"
        if differ:
            raise CheckpointError(f"{path.name}: written by an incompatible worker ({', '.join(differ)})")
        try:
            state = pickle.loads(body)
        except Exception as exc:  # noqa: BLE001 - a class renamed/removed since it was written
            raise CheckpointError(f"{path.name}: state does not match this version of the code "
                                  f"({type(exc).__name__}: {exc})") from None
        return Checkpoint(pipeline=state["pipeline"], positions=state["positions"],
                          pending_letters=state["pending_letters"], wall=state["wall"],
                          sequence=header["sequence"], created=header["created"], path=path)

    def load_latest(self) -> Checkpoint | None:
        """The newest valid checkpoint; ``None`` if there is none.

        Corrupt files are skipped with a warning (the previous one is used); an
        incompatible newest file raises :class:`CheckpointError` (start fresh: an older
        file would be older state of the same incompatible kind).
        """
        for _, path in self.paths():
            try:
                return self.read(path)
            except CheckpointError as exc:
                if not exc.corrupt:
                    raise
                logger.warning("ignoring corrupt checkpoint %s", exc)
        return None


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)


def check_layout(restored: Any, fresh: Any) -> None:
    """Raise :class:`CheckpointError` if the restored pipeline lacks attributes a fresh
    one has (the code changed since the checkpoint, without a STATE_VERSION bump)."""
    missing = sorted(set(vars(fresh)) - set(vars(restored)))
    if missing:
        raise CheckpointError("state does not match this version of the code (missing "
                              + ", ".join(missing[:5]) + ")")


# -- the live worker's side --------------------------------------------------------------------

class LiveCheckpointer:
    """Takes and restores checkpoints for a :class:`streams.agents.LiveRuntime`."""

    def __init__(self, store: CheckpointStore, *, every_seconds: float = 30.0,
                 every_messages: int = 100_000) -> None:
        self.store = store
        self.every_seconds = every_seconds
        self.every_messages = every_messages
        self.saved = 0
        self.restored_from: int | None = None
        self.last_seconds: float | None = None   # duration of the last save
        self._last_at = time.monotonic()
        self._last_messages = 0
        self._task: asyncio.Future | None = None
        self._restore_needed = True
        self._owned: set[tuple[str, int]] = set()
        self.gate = OffsetGate()
        self._probe: asyncio.Future | None = None
        # Partitions whose state position lay past their log's end at the last seek
        # (key -> (next offset, log end)), until the state takes a message of them; and
        # what was warned about already (one line per partition and position).
        self.past_log_end: dict[tuple[str, int], tuple[int, int]] = {}
        self.log_check: asyncio.Future | None = None
        self._warned_past_end: set[tuple[tuple[str, int], int]] = set()

    # -- restore ------------------------------------------------------------------------
    def on_assigned(self, runtime: Any, assigned: set) -> None:
        """Partitions assigned: reload the newest checkpoint if any of them is new to us."""
        owned = {(tp.topic, tp.partition) for tp in assigned}
        if owned - self._owned:
            self._restore_needed = True
        self._owned = owned
        self.gate.keep_only(owned)
        self.ensure_restored(runtime)

    def ensure_restored(self, runtime: Any) -> None:
        if not self._restore_needed or not self._owned:
            return
        self._restore_needed = False
        fresh = runtime.pipeline
        started = time.monotonic()
        try:
            ckpt = self.store.load_latest()
            if ckpt is not None:
                check_layout(ckpt.pipeline, fresh)
        except CheckpointError as exc:
            # Said now: this worker's own checkpoints replace those files within minutes,
            # and a restart with a mistyped setting then loses the learned state for good.
            logger.error("cannot use checkpoint %s; starting with empty state from the committed "
                         "offsets. The files in %s are deleted once this worker has written %d "
                         "checkpoints: to keep that state, stop this worker and start it with "
                         "the settings and version that wrote them", exc, self.store.directory,
                         self.store.keep)
            return
        if ckpt is None:
            logger.info("no checkpoint in %s: starting with empty state", self.store.directory)
            return
        pipeline = ckpt.pipeline
        # What this run was configured with wins over what the checkpoint carried.
        pipeline.keep_events, pipeline.keep_aggregates = fresh.keep_events, fresh.keep_aggregates
        pipeline.calendar = fresh.calendar
        runtime.replace_pipeline(pipeline)
        runtime.positions = {key: offset - 1 for key, offset in ckpt.positions.items()}
        self.gate.restored(ckpt.positions)
        runtime.pending_letters = list(ckpt.pending_letters) + runtime.pending_letters
        if ckpt.wall is not None:
            runtime.clock.now, runtime.clock._last = ckpt.wall, None
        self.restored_from = ckpt.sequence
        self._last_messages = pipeline.counters["messages"]
        logger.info("restored checkpoint #%d (%s old, %d messages) in %.2fs; resuming at %s",
                    ckpt.sequence, f"{time.time() - ckpt.created:.1f}s", pipeline.counters["messages"],
                    time.monotonic() - started,
                    ", ".join(f"{t}/{p}@{o}" for (t, p), o in sorted(ckpt.positions.items())))

    async def admit(self, runtime: Any, msg: Any) -> bool:
        """Whether the state takes this delivered message (:mod:`streams.offset_gate`):
        exactly the next offset of its partition. A message ahead of the state starts a
        seek back to the next one (rate-limited); a redelivery is just skipped."""
        key = (msg.topic, msg.partition)
        last = runtime.positions.get(key)
        if last is None or msg.offset == last + 1:   # the common case, without a call
            if self.gate.stuck or self.gate.windows:
                self.gate.passed(key, msg.offset)
            if self.past_log_end:
                self.past_log_end.pop(key, None)
            return True
        now = time.monotonic()
        verdict = self.gate.check(runtime.positions, key, msg.offset,
                                  log_end=_log_end(runtime, msg.tp), now=now)
        if verdict == AHEAD:
            await self._seek_back(runtime, msg.tp, now)
        elif verdict == ADMIT:
            self.past_log_end.pop(key, None)
        return verdict == ADMIT

    async def check_log_ends(self, runtime: Any, consumer: Any, wanted: Mapping[Any, int]) -> None:
        """Warn about partitions whose state position lies past their log's end.

        On a broker whose topic was recreated (or that lost its log) the seek to the
        checkpoint's position lands past the end; the broker waits there rather than
        resetting, /stats/ lag floors at 0, and the new log's messages below the position
        are never read (the state takes the one at the position next). Said once per partition and position;
        shown in /stats/ ``checkpoint.past_log_end`` until the state takes a message of
        that partition. The processing is unchanged: a log being re-sent (the broker
        restarted empty, its producer replaying) is waited for, and a message below the
        position from a log that ends below it takes the gate's log-restart rule. Run as
        a task after the seek: a broker slow to answer must not hold the rebalance.
        """
        try:
            ends = await asyncio.wait_for(consumer.highwaters(*wanted), 10.0)
        except Exception as exc:  # noqa: BLE001 - only a check: the seek stands either way
            logger.info("cannot read the input logs' end offsets to check the resume "
                        "positions against them: %r", exc)
            return
        for tp, offset in wanted.items():
            key, end = (tp.topic, tp.partition), ends.get(tp)
            if runtime.positions.get(key, -1) + 1 != offset:
                continue   # the state has moved on meanwhile: a message of it was taken
            if end is None or offset <= end:
                self.past_log_end.pop(key, None)
                continue
            self.past_log_end[key] = (offset, end)
            if (key, offset) in self._warned_past_end:
                continue
            self._warned_past_end.add((key, offset))
            source = (f"checkpoint #{self.restored_from}" if self.restored_from is not None
                      else "in-memory state")
            logger.warning(
                "%s/%d: the %s resumes at offset %d but the log ends at %d (the topic was "
                "recreated, or the broker lost its log): the worker waits there, lag shows 0, "
                "and its messages below offset %d are never read. If the old log "
                "is being re-sent, let it wait; if the topic is new for good, stop the worker "
                "and move the checkpoint files out of %s (the state then starts empty, from "
                "the group's committed offsets)", tp.topic, tp.partition, source, offset, end,
                offset, self.store.directory)

    async def _seek_back(self, runtime: Any, tp: Any, now: float) -> None:
        key = (tp.topic, tp.partition)
        offset = self.gate.seek_due(runtime.positions, key, now)
        if offset is None:
            return
        try:
            await seek_on_consumer_thread(runtime.app.consumer, tp, offset)
        except Exception as exc:  # noqa: BLE001 - retried by the tick while still ahead
            logger.warning("%s/%d: seeking back to %d failed: %r", tp.topic, tp.partition,
                           offset, exc)
        finally:
            self.gate.seek_done(key, time.monotonic())

    async def maintain(self, runtime: Any) -> None:
        """From the wall-clock tick: partitions still ahead of the state are sought back
        again (messages faust dropped below its read offset come only after a new seek);
        after a while the broker is asked whether the wanted messages still exist; a
        partition waiting long is reported."""
        if not self.gate.stuck:
            return
        from faust.types import TP

        now = time.monotonic()
        for key in list(self.gate.stuck):
            await self._seek_back(runtime, TP(*key), now)
            if self.gate.probe_due(key, now) and (self._probe is None or self._probe.done()):
                self._probe = asyncio.ensure_future(self._probe_next_record(runtime, [key]))
            if self.gate.report_due(key, now):
                stuck = self.gate.stuck[key]
                logger.warning("%s/%d: waiting for offset %d (the state's next message) for "
                               "%.0fs; the broker delivers from %d on. Seeking back again.",
                               *key, runtime.positions.get(key, -1) + 1, now - stuck.since,
                               stuck.seen)

    async def _probe_next_record(self, runtime: Any, keys: list[tuple[str, int]]) -> None:
        from riskwatch.broker import next_records

        wanted = {key: runtime.positions[key] + 1 for key in keys if key in runtime.positions}
        try:
            found = await next_records(runtime.bootstrap, wanted)
        except Exception as exc:  # noqa: BLE001 - asked again later while still waiting
            logger.warning("cannot read the input logs from the state's positions: %r", exc)
            return
        for key, (first, log_start) in found.items():
            if key in self.gate.stuck and runtime.positions.get(key, -1) + 1 == wanted[key]:
                self.gate.record_at(runtime.positions, key, first, log_start=log_start)

    def resume_offsets(self, runtime: Any, tps: set) -> dict:
        """Where each assigned partition must be read from for the in-memory state.

        A partition the state has seen resumes after its last processed offset; one it
        has not seen, while the state came from a checkpoint, is read from the start
        (the checkpoint reflects none of its messages).
        """
        wanted = {}
        for tp in tps:
            processed = runtime.positions.get((tp.topic, tp.partition))
            if processed is not None:
                wanted[tp] = processed + 1
            elif self.restored_from is not None:
                wanted[tp] = 0
        return wanted

    # -- save ---------------------------------------------------------------------------
    async def maybe_save(self, runtime: Any) -> None:
        """After a message: save when ``every_seconds`` or ``every_messages`` passed."""
        if self._task is not None and not self._task.done():
            return
        messages = runtime.pipeline.counters["messages"]
        if (messages - self._last_messages < self.every_messages
                and time.monotonic() - self._last_at < self.every_seconds):
            return
        if messages == self._last_messages and self.saved:
            self._last_at = time.monotonic()
            return  # nothing new since the last one
        self._task = asyncio.ensure_future(self.save(runtime, self._snapshot(runtime)))

    def _snapshot(self, runtime: Any) -> tuple[bytes, dict] | None:
        if not runtime.assigned or not runtime.pipeline_ready or self._restore_needed:
            return None  # a standby (or a worker mid-rebalance) must not overwrite the group's state
        if runtime.unpublished:
            # Outputs of the state so far that no topic or sink has yet: a checkpoint now
            # would let a restart skip them (streams.publishing).
            logger.error("checkpoint not written: %d output record(s) not published yet",
                         len(runtime.unpublished))
            return None
        self._last_at = time.monotonic()
        self._last_messages = runtime.pipeline.counters["messages"]
        positions = {key: offset + 1 for key, offset in runtime.positions.items()
                     if key in self._owned}
        return encode_state(runtime.pipeline, positions, pending_letters=runtime.pending_letters,
                            wall=runtime.clock.now), positions

    async def save(self, runtime: Any, snapshot: tuple[bytes, dict] | None) -> None:
        """Make the outputs so far durable, then write ``snapshot`` (from the loop)."""
        if snapshot is None:
            return
        started = time.monotonic()
        try:
            # faust's producer flush also flushes the sinks (agents.flush_sinks_before_commit).
            await runtime.app.producer.flush()
            path = await asyncio.get_running_loop().run_in_executor(None, self.store.write, *snapshot)
        except Exception:  # noqa: BLE001 - a failed checkpoint must not stop processing
            logger.exception("writing a checkpoint failed (the previous one stays valid)")
            return
        self.saved += 1
        self.last_seconds = round(time.monotonic() - started, 3)
        logger.debug("checkpoint %s written (%d bytes, %.2fs)", path.name, len(snapshot[0]),
                     self.last_seconds)

    async def save_now(self, runtime: Any) -> None:
        """Clean stop: wait for a save in flight, then write a final checkpoint."""
        if self._task is not None:
            await asyncio.wait([self._task])
        await self.save(runtime, self._snapshot(runtime))
        if self.saved:
            logger.info("final checkpoint written (%d this run)", self.saved)

    def stats(self) -> dict:
        return {"directory": str(self.store.directory), "saved": self.saved,
                "restored_from": self.restored_from, "last_save_s": self.last_seconds,
                "offsets": dict(self.gate.counters),
                "past_log_end": [{"topic": t, "partition": p, "next": offset, "log_end": end}
                                 for (t, p), (offset, end) in sorted(self.past_log_end.items())]}


def _log_end(runtime: Any, tp: Any) -> int | None:
    """The partition's end offset as the consumer last fetched it (``None``: unknown)."""
    try:
        value = runtime.app.consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - unknown is a valid answer (the gate then waits)
        return None
    return value if isinstance(value, int) else None


async def seek_on_consumer_thread(consumer: Any, tp: Any, offset: int) -> None:
    """``consumer.seek(tp, offset)``, run on faust's consumer thread.

    faust's ``Consumer.seek`` calls aiokafka's ``seek`` from the calling (agents') thread,
    while aiokafka's fetcher runs on faust's consumer thread: the seek's ``del
    fetcher._records[tp]`` then races the fetcher's own in ``fetched_records``, and the
    consumer thread dies with ``KeyError(TopicPartition(...))`` (a standby taking over
    crashed so in ``make faults``; robinhood/aiokafka#19 reports the same crash). Going
    through the thread's ``call_thread`` queue, as faust's own ``seek_to_committed`` does,
    makes the seek happen between two fetches. Then faust's read offset is set as its
    ``seek`` would.
    """
    thread = getattr(consumer, "_thread", None)
    if thread is None or not hasattr(thread, "call_thread") or not hasattr(consumer, "_read_offset"):
        await consumer.seek(tp, offset)  # another transport: its own seek
        return
    await thread.call_thread(thread.seek, tp, offset)
    consumer._read_offset[tp] = offset if offset else None


def attach(app: Any, runtime: Any) -> None:
    """Make faust's post-rebalance seek land where the pipeline's state says.

    faust calls ``consumer.perform_seek()`` when streams resume after a rebalance,
    which seeks to the committed offsets via ``seek_to_committed()``; we wrap that
    method to move each partition on to :meth:`LiveCheckpointer.resume_offsets` and
    report those offsets as faust's starting point.
    """
    consumer = app.consumer
    if getattr(consumer, "_riskwatch_seek", False):
        return
    original = consumer.seek_to_committed

    async def seek_to_state() -> Mapping:
        committed = dict(await original())
        checkpointer = runtime.checkpointer
        checkpointer.ensure_restored(runtime)
        tps = {tp for tp in consumer.assignment()
               if tp.topic in runtime.topics.inputs or tp.topic == runtime.topics.feedback}
        wanted = checkpointer.resume_offsets(runtime, tps)
        for tp in tps:
            # faust's seek above, and ours below: what was fetched before may still come.
            checkpointer.gate.open_window((tp.topic, tp.partition))
        for tp, offset in wanted.items():
            # The gate then takes exactly this offset next (0 included: a partition the
            # restored state never saw is read from its start, not from where faust
            # happened to begin).
            runtime.positions.setdefault((tp.topic, tp.partition), offset - 1)
            if committed.get(tp) != offset:
                logger.info("seek %s/%d to %d (checkpointed state; committed %s)",
                            tp.topic, tp.partition, offset, committed.get(tp))
                await seek_on_consumer_thread(consumer, tp, offset)
            committed[tp] = offset
        if wanted:   # kept on the checkpointer, or the task could be collected
            checkpointer.log_check = asyncio.ensure_future(
                checkpointer.check_log_ends(runtime, consumer, wanted))
        for tp in tps - set(wanted):
            # Starting at the committed offset: the next checkpoint must say so, or a
            # restore would read this partition from its beginning.
            if committed.get(tp) is not None:
                runtime.positions.setdefault((tp.topic, tp.partition), committed[tp] - 1)
        return committed

    consumer.seek_to_committed = seek_to_state
    consumer._riskwatch_seek = True


# -- command-line flags (worker and `riskwatch worker`) ------------------------------------------

def add_fault_tolerance_arguments(p: argparse.ArgumentParser) -> None:
    """``--checkpoint-dir`` & co. and ``--single-input-topic`` (also on ``riskwatch worker``)."""
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="checkpoint the pipeline's state here and resume from it after a crash "
                   "(share it between the workers of one consumer group); default: no checkpoints")
    p.add_argument("--checkpoint-seconds", type=float, default=30.0,
                   help="seconds between checkpoints (default %(default)g)")
    p.add_argument("--checkpoint-messages", type=int, default=100_000,
                   help="input messages between checkpoints (default %(default)d)")
    p.add_argument("--single-input-topic", action="store_true",
                   help="read every event type from one topic <prefix>events (on one partition: "
                   "live output equals replay of the same messages exactly)")


def fault_tolerance_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`run_worker` keywords of :func:`add_fault_tolerance_arguments`' flags."""
    if args.checkpoint_seconds <= 0 or args.checkpoint_messages <= 0:
        raise ConfigError("--checkpoint-seconds and --checkpoint-messages must be positive")
    return {"checkpoint_dir": args.checkpoint_dir, "checkpoint_seconds": args.checkpoint_seconds,
            "checkpoint_messages": args.checkpoint_messages, "single_input": args.single_input_topic}
