"""The ingest agent's runs (streams.agents.ingest_run) against one message at a time.

A real faust app and :class:`~streams.agents.LiveRuntime` (not started: no broker is
needed to call the agent's per-run code); the output topics are replaced by recorders
because sending needs a running producer. ``tests/integration/test_live_worker.py``
runs the whole worker on a real broker and compares its alerts with replay.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import types
from pathlib import Path

import orjson
import pytest

from riskwatch.settings import PipelineSettings
from riskwatch.simulator import SimulationConfig, generate
from streams.agents import handle_message, ingest_run, publish
from streams.app import TopicNames, create_app


class RecordingTopic:
    """Stands in for a faust topic: keeps what :func:`publish` sends, in order."""

    def __init__(self, kind: str, sent: list) -> None:
        self.kind, self.sent = kind, sent

    async def send(self, *, key: bytes | None, value: bytes) -> None:
        self.sent.append((self.kind, key, value))


def _runtime(tmp_path, name: str):
    app = create_app(PipelineSettings(), broker_url="kafka://127.0.0.1:1", data_dir=tmp_path / name,
                     app_id=name)
    app.flow_control.resume()   # active, as once the consumer runs
    runtime = app.riskwatch
    runtime.sent_records = []
    runtime.output_topics = {kind: RecordingTopic(kind, runtime.sent_records)
                             for kind in runtime.output_topics}
    return runtime


@pytest.fixture(scope="module")
def messages() -> list[tuple[str, int, bytes]]:
    """(topic, offset, value): 4,000 simulated lines (several bucket closes, malformed
    lines, duplicates), each on the topic a producer would use, offsets per topic."""
    topics = TopicNames()
    lines = list(itertools.islice(
        (line for _, line in generate(SimulationConfig(days=0.2, orders_per_day=50_000, merchants=300,
                                                       seed=5))), 4000))
    offsets: dict[str, int] = {}
    out = []
    for line in lines:
        try:
            kind = orjson.loads(line).get("type")
        except (orjson.JSONDecodeError, AttributeError):   # malformed: the orders topic
            kind = None
        topic = topics.for_event_type(kind)
        offsets[topic] = offsets.get(topic, -1) + 1
        out.append((topic, offsets[topic], line))
    return out


def _event(topic: str, offset: int, value: bytes, generation: int = 0):
    message = types.SimpleNamespace(topic=topic, partition=0, offset=offset, generation_id=generation,
                                    tp=(topic, 0))
    return types.SimpleNamespace(message=message, value=value)


def _per_topic(sent: list) -> dict[str, list]:
    """Records per output kind, in send order; a dead letter's wall-clock ``ts`` dropped."""
    out: dict[str, list] = {}
    for kind, key, value in sent:
        record = orjson.loads(value)
        if kind == "dead_letters":
            record.pop("ts", None)
        out.setdefault(kind, []).append((key, record))
    return out


async def _never_restored(msg) -> bool:
    return False


def test_runs_give_the_outputs_of_one_message_at_a_time(tmp_path, messages):
    single, runs = _runtime(tmp_path, "single"), _runtime(tmp_path, "runs")

    async def one_at_a_time() -> None:
        for topic, offset, value in messages:
            handle_message(single, topic, 0, offset, value)
            await publish(single)

    async def in_runs() -> int:
        done = 0
        events = [_event(*m) for m in messages]
        for start in range(0, len(events), 333):   # runs cut anywhere, like take_events' timeout
            done += await ingest_run(runs, events[start:start + 333], _never_restored)
        return done

    asyncio.run(one_at_a_time())
    assert asyncio.run(in_runs()) == len(messages)
    for runtime in (single, runs):   # what the shutdown does: close the open buckets
        runtime.pipeline.flush()
        asyncio.run(publish(runtime))
    by_kind = _per_topic(single.sent_records)
    assert {"scores", "dead_letters"} <= set(by_kind), f"fixture too weak: only {set(by_kind)} were published"
    # Each output topic gets the same records in the same order (across topics Kafka
    # keeps no order anyway: a run publishes its dead letters before its scores).
    assert _per_topic(runs.sent_records) == by_kind
    assert runs.pipeline.stats == single.pipeline.stats
    assert runs.positions == single.positions


def test_stale_messages_of_a_previous_generation_or_stopped_flow_are_skipped(tmp_path, messages):
    runtime = _runtime(tmp_path, "stale")
    app = runtime.app
    app.consumer_generation_id = 3
    current = [_event(*m, generation=3) for m in messages[:50]]
    stale = [_event(*m, generation=2) for m in messages[50:60]]
    assert asyncio.run(ingest_run(runtime, current[:25] + stale + current[25:], _never_restored)) == 50
    assert runtime.pipeline.counters["messages"] == 50
    assert runtime.stale_skipped == 10
    app.flow_control.suspend()   # a rebalance began while the run was buffered
    assert asyncio.run(ingest_run(runtime, [_event(*m, generation=3) for m in messages[60:70]],
                                  _never_restored)) == 0
    assert runtime.pipeline.counters["messages"] == 50
    assert runtime.stale_skipped == 20


def test_the_live_pipeline_is_built_with_scipy_stats_imported():
    """The worker builds its pipeline on a start-up thread; scipy.stats (~1 s to import,
    needed by the first intent-mix run's tail) is imported there too, not later on the
    event loop in the middle of a stream. A fresh interpreter: this one has it already."""
    code = ("import sys\n"
            "from riskwatch.settings import PipelineSettings\n"
            "from streams.agents import _build_pipeline\n"
            "before = 'scipy.stats' in sys.modules\n"
            "_build_pipeline(PipelineSettings(), None, False)\n"
            "print(before, 'scipy.stats' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "True"]


def test_a_verdict_on_an_alert_the_worker_never_raised_counts_unknown(tmp_path, caplog):
    """The on-call audit: a well-formed verdict on an alert id the worker never raised
    (a typo, another deployment's id) was counted ``applied`` in /stats/. The worker
    knows the alerts it raised in the last week (firing or not), and its checkpoints
    carry them: a verdict on a resolved alert from before a restart is still known."""
    import logging

    from streams.agents import handle_feedback
    from streams.alerting import fingerprint
    from streams.checkpoint import CheckpointStore, encode_state
    from streams.replay import replay_lines
    from tests import streamkit

    runtime = _runtime(tmp_path, "fb-unknown")
    alerts: list[dict] = []
    lines = streamkit.steady_stream(days=1.2, incident=("广东", "中通", 26.0, 28.0, 0.25))
    replay_lines(runtime.pipeline, lines, source="orders", on_output=lambda out: alerts.extend(out.alerts))
    fired = [a for a in alerts if a["status"] == "firing"]
    assert fired and any(a["status"] == "resolved" for a in alerts)   # its episode is over
    never = f"{fingerprint('complaint_rate', {'region': '西藏'})}-{fired[0]['alert_id'].split('-')[1]}"

    def verdict(runtime, alert_id: str, offset: int) -> None:
        value = orjson.dumps({"alert_id": alert_id, "verdict": "confirmed"})
        handle_feedback(runtime, "feedback", 0, offset, value)

    with caplog.at_level(logging.WARNING, logger="streams.agents"):
        verdict(runtime, fired[0]["alert_id"], 0)
        verdict(runtime, never, 1)
    assert runtime.feedback == {"applied": 1, "unknown": 1, "rejected": 0}
    (line,) = [r.getMessage() for r in caplog.records if "has not raised" in r.getMessage()]
    assert never in line and fired[0]["alert_id"] not in line

    # a restart from a checkpoint: the resolved alert is still known
    store = CheckpointStore(tmp_path / "ckpt", settings_digest="s")
    store.write(encode_state(runtime.pipeline, {("orders", 0): 1}), {("orders", 0): 1})
    restarted = _runtime(tmp_path, "fb-restarted")
    restarted.replace_pipeline(store.load_latest().pipeline)
    verdict(restarted, fired[0]["alert_id"].upper(), 2)   # retyped from a page
    assert restarted.feedback == {"applied": 1, "unknown": 0, "rejected": 0}
