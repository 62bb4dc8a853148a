"""The live worker end to end: Tansu broker, ``python -m streams.worker``, aiokafka client.

What a user relies on, checked on the real processes:

- malformed messages become dead letters that say where they came from
  (topic/partition/offset) and carry no complaint text, and the worker keeps going;
- the live worker raises exactly the alerts ``riskwatch replay`` raises on the same events
  (compared on fingerprint, status, bucket start and severity);
- a worker started without ``--broker`` runs its own broker and stops it on exit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import types
from pathlib import Path

import pytest

from riskwatch.settings import PipelineSettings
from streams.app import TopicNames

BUCKET_SECONDS = 300
LATENESS_SECONDS = 600
SETTINGS_ARGS = ["--bucket-seconds", str(BUCKET_SECONDS),
                 "--allowed-lateness-seconds", str(LATENESS_SECONDS)]
SECRET_TEXT = "收件人张三 电话13812345678 地址杭州市西湖区文三路99号 包裹一直没到"


def _ts(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone(dt.timedelta(hours=8))).isoformat()


def _order(i: int, epoch: int, **kw: object) -> dict:
    return {"type": "order", "event_id": f"o-{i}", "ts": _ts(epoch), "order_id": f"O{i}",
            "merchant_id": kw.get("merchant_id", "m1"), "region": kw.get("region", "广东"),
            "carrier": kw.get("carrier", "SF"), "category": kw.get("category", "digital"),
            "amount": 99.0}


# -- the dead-letter path ------------------------------------------------------------------

@pytest.mark.integration
def test_malformed_messages_become_dead_letters_and_worker_survives(tansu, kafka, start_worker):
    prefix = "dl" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix)
    worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=SETTINGS_ARGS)
    t0 = 1_793_500_000
    complaint = {"type": "complaint", "event_id": "c-1", "ts": _ts(t0), "complaint_id": "C1",
                 "order_id": "O1", "merchant_id": "m1", "region": "浙江", "carrier": "ZTO",
                 "channel": "app", "text": SECRET_TEXT}
    broken_complaint = json.dumps(complaint, ensure_ascii=False).encode()[:-25]   # cut off
    missing_field = dict(complaint, event_id="c-2")
    del missing_field["merchant_id"]
    mixed_array = [_order(2, t0 + 1), {"type": "order", "event_id": "o-3", "ts": "yesterday"}]
    bad = [
        (topics.complaints, broken_complaint),                                   # malformed JSON
        (topics.complaints, json.dumps(missing_field, ensure_ascii=False).encode()),  # invalid
        (topics.orders, json.dumps(mixed_array).encode()),                       # 1 good + 1 bad
        (topics.orders, b"\x00\xffnot json at all"),
        (topics.orders, json.dumps([_order(4, t0 + 2), dict(_order(5, t0 + 3), ts="2026-11-02 10:00")]
                                   ).encode()),                                # 1 good + 1 bad time
        (topics.order_status, b""),                                              # empty
    ]
    good_after = [(topics.orders, json.dumps(_order(i, t0 + i)).encode()) for i in range(10, 15)]
    worker.wait_ready()   # the worker creates the topics; producing first would auto-create them
    positions = kafka.produce([(topics.orders, json.dumps(_order(1, t0)).encode()), *bad, *good_after])

    stats = worker.wait_processed(len(positions))
    assert worker.alive
    assert stats["pipeline"]["orders"] == 1 + 1 + 1 + len(good_after), stats   # the worker kept going
    assert stats["agent_errors"] == 0

    records = kafka.read(topics.dead_letters)
    raw = b"".join(r.value for r in records)
    for secret in ("张三", "13812345678", "文三路", "包裹一直没到"):
        assert secret.encode() not in raw, f"dead letters leak complaint text: {secret}"
    letters = [json.loads(r.value) for r in records]
    got = sorted((d["source"], d["partition"], d["offset"]) for d in letters)
    assert got == sorted(positions[1:1 + len(bad)])    # one letter per bad message, at its offset
    by_offset = {(d["source"], d["offset"]): d for d in letters}
    assert by_offset[positions[2][0], positions[2][2]]["event_id"] == "c-2", letters
    bad_time = by_offset[positions[5][0], positions[5][2]]
    assert (bad_time["index"], bad_time["event_id"], bad_time["reason"]) == (1, "o-5", "invalid field")
    # the message's excerpt (re-serialised once its text fields were dropped, so compact)
    assert bad_time["payload_excerpt"].replace(" ", "").startswith('[{"type":"order"'), bad_time
    # an external broker and no --checkpoint-dir: the worker says what that costs
    assert "no --checkpoint-dir" in worker.log_text()
    assert all(r.key == d["source"].encode() for r, d in zip(records, letters, strict=True))  # keyed by topic
    assert worker.stop() == 0


# -- live == replay ------------------------------------------------------------------------

def _fixture_lines() -> list[bytes]:
    """Three simulated days (slices page only after a day of warm-up) with incidents.

    Malformed lines and exact duplicates stay in: both sides must ignore them the same
    way. Late events are off: whether an event is late depends on how far the *other*
    topics have been consumed, so it legitimately differs between a file and Kafka.
    """
    from riskwatch.simulator import SimulationConfig, generate

    config = SimulationConfig(days=3, orders_per_day=10_000, merchants=300, incidents=4,
                              seed=11, late_share=0.0)
    return [line for _, line in generate(config)]


def _live_messages(lines: list[bytes], topics: TopicNames) -> list[tuple[str, bytes]]:
    """Lines routed to their topic by ``type``, in order: mostly JSON arrays of 40 events
    (batching producers), one group in ten as single objects, malformed lines (anything
    that is not a JSON object) alone on the orders topic.

    faust costs ~0.6 ms per *message* whatever its size, so arrays keep this test short.
    """
    per_topic: dict[str, list[bytes]] = {}
    messages: list[tuple[str, bytes]] = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            messages.append((topics.orders, line))
            continue
        per_topic.setdefault(topics.for_event_type(str(event.get("type"))), []).append(line)
    for topic, group in per_topic.items():
        for i in range(0, len(group), 40):
            chunk = group[i:i + 40]
            if (i // 40) % 10 == 0:
                messages.extend((topic, line) for line in chunk)
            else:
                messages.append((topic, b"[" + b",".join(chunk) + b"]"))
    return messages


def _alert_keys(alerts: list[dict]) -> list[tuple]:
    return sorted((a["fingerprint"], a["status"], a["bucket_start"], a["severity"]) for a in alerts)


def _alert_diff(live: list[dict], replay: list[dict]) -> str:
    def only(alerts: list[dict], others: list[dict]) -> list[str]:
        extra = set(_alert_keys(alerts)) - set(_alert_keys(others))
        return [f"  {a['status']} {a['severity']} {a['bucket_start']} {a['dimensions']} "
                f"observed={a['observed']} expected={a['expected']}"
                for a in alerts if _alert_keys([a])[0] in extra]
    return "\n".join(["live only:", *only(live, replay), "replay only:", *only(replay, live)])


def _replay(lines: list[bytes], path: Path) -> tuple[list[dict], list[dict]]:
    """The alerts and the complaint records of ``riskwatch replay`` on ``lines``."""
    from streams.pipeline import Pipeline
    from streams.replay import replay_lines

    path.write_bytes(b"".join(line + b"\n" for line in lines))
    settings = PipelineSettings(bucket_seconds=BUCKET_SECONDS, allowed_lateness_seconds=LATENESS_SECONDS)
    alerts: list[dict] = []
    complaints: list[dict] = []

    def keep(out) -> None:
        alerts.extend(out.alerts)
        complaints.extend(out.complaints)
    with path.open("rb") as handle:
        replay_lines(Pipeline(settings), handle, source="file", on_output=keep)
    return alerts, complaints


def _complaint_keys(records: list[dict]) -> list[tuple]:
    """Each complaint's latest record (highest version), as a consumer keeps them. How
    many versions lead there may differ: a delivery read before the complaint's bucket
    closed resolves it in its first record, one read after in a second."""
    latest: dict[str, dict] = {}
    for c in records:
        if c["complaint_id"] not in latest or c["version"] > latest[c["complaint_id"]]["version"]:
            latest[c["complaint_id"]] = c
    return sorted((c["complaint_id"], c["intent"], c["status"], c["auto_resolved"],
                   c["masked_text"]) for c in latest.values())


# The pipeline's result does not depend on how faust interleaves the topics (per-source
# watermarks, complaints counted at bucket close in their order's category, early agent
# updates kept until their complaint arrives): live must equal replay exactly.
@pytest.mark.integration
def test_live_alerts_equal_replay(tansu, kafka, start_worker, tmp_path):
    lines = _fixture_lines()
    expected, expected_complaints = _replay(lines, tmp_path / "events.jsonl")
    assert expected, "fixture too weak: replay raised no alert, the comparison would be vacuous"

    prefix = "eq" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix)
    worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=SETTINGS_ARGS)
    messages = _live_messages(lines, topics)
    ready_after = worker.wait_ready()
    started = time.monotonic()
    kafka.produce(messages)
    stats = worker.wait_processed(len(messages), timeout=60)
    elapsed = time.monotonic() - started
    assert stats["pipeline"]["late"] == 0
    assert worker.stop() == 0      # shutdown closes the open buckets, like replay's flush

    live = [json.loads(r.value) for r in kafka.read(topics.alerts)]
    events = stats["pipeline"]["events"]
    print(f"\nlive worker: ready after {ready_after:.1f}s, {events} events in "
          f"{elapsed:.1f}s ({events / elapsed:.0f} events/s incl. produce), "
          f"{len(live)} alerts (replay {len(expected)})")
    assert _alert_keys(live) == _alert_keys(expected), _alert_diff(live, expected)
    # the enriched complaints a ticket system reads: the same records as replay writes
    complaints = [json.loads(r.value) for r in kafka.read(topics.complaint_records)]
    live_c, replay_c = _complaint_keys(complaints), _complaint_keys(expected_complaints)
    differ = [(a, b) for a, b in zip(live_c, replay_c) if a != b]
    print(f"complaint records: live {len(complaints)}, replay {len(expected_complaints)}; "
          f"{len(live_c)} vs {len(replay_c)} complaints; {len(differ)} final states differ")
    for a, b in differ[:5]:
        print("  live  ", a[:4], "\n  replay", b[:4])
    assert expected_complaints and live_c == replay_c


# -- embedded broker lifecycle -------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.integration
def test_worker_without_broker_runs_and_stops_its_own(broker_binary, start_worker):
    worker = start_worker(broker_url=None, prefix="emb-", extra=["--duration", "10"])
    deadline = time.monotonic() + 20
    while not (match := re.search(r"embedded broker \(Tansu\) ready at \S+ pid=(\d+)", worker.log_text())):
        assert worker.alive and time.monotonic() < deadline, worker.log_text()
        time.sleep(0.1)
    broker_pid = int(match.group(1))
    assert _pid_alive(broker_pid)
    assert worker.proc.wait(40) == 0            # --duration stops it by itself
    log = worker.log_text()
    assert "worker ready after" in log and "stopping worker (duration 10s elapsed)" in log, log
    assert not _pid_alive(broker_pid), "the embedded Tansu broker outlived its worker"
    assert "embedded broker stopped" in log
    assert "no --checkpoint-dir" not in log, "nothing to keep across restarts of an embedded broker"


# -- per-message containment (no broker needed) ----------------------------------------------

def test_internal_error_becomes_dead_letter_without_payload():
    from streams.agents import handle_message

    class Exploding:
        def process(self, raw, *, source, partition, offset):
            raise ValueError(f"cannot handle {raw[:40]!r} from 13812345678")

    runtime = types.SimpleNamespace(pipeline=Exploding(), agent_errors=0, pending_letters=[],
                                    positions={})
    handle_message(runtime, "complaints", 3, 41, SECRET_TEXT.encode())   # must not raise
    (letter,) = runtime.pending_letters
    assert runtime.agent_errors == 1 and runtime.positions == {("complaints", 3): 41}
    assert (letter["source"], letter["partition"], letter["offset"]) == ("complaints", 3, 41)
    assert letter["reason"] == "internal error" and letter["payload_excerpt"] == ""
    assert letter["detail"].startswith("ValueError")
    assert "13812345678" not in letter["detail"] and "\\xe5" not in letter["detail"]
