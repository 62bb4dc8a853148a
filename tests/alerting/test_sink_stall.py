"""A receiver that keeps failing, as /stats/ and the watchdog see it (streams.sink_stall).

A real AlertmanagerSink posts to a real HTTP receiver answering 503, behind a URL with
a password and a key in its query; the live worker's SinkFeeder drives it. Before 2026-11-25 the feeder knew nothing of a transient
failure (the sink retries it inside flush()): ``sink_errors`` stayed 0 and nothing named
the receiver the worker was waiting on.
"""

from __future__ import annotations

import asyncio

from sinks.alertmanager import AlertmanagerSink
from sinks.base import RetryPolicy
from streams.agents import SinkFeeder
from streams.sink_stall import forced_stop_reason
from tests.alerting.amkit import RecordingReceiver
from tests.alerting.test_alertmanager_sink import record

FAILURES = 4


def test_a_receiver_answering_503_is_counted_and_named_while_the_sink_retries() -> None:
    seen: dict = {}
    feeder: SinkFeeder | None = None

    def status(n: int) -> int:
        if n == FAILURES - 1:   # the sink thread is waiting on this receiver right now
            assert feeder is not None and feeder.stall is not None
            seen["stall"] = feeder.stall.stats()
            seen["retries"] = feeder.retries
            seen["reason"] = forced_stop_reason(feeder, checkpointing=True, embedded_broker=False)
        return 503 if n < FAILURES else 200

    with RecordingReceiver(status) as receiver:
        base = receiver.url.replace("http://", "http://ops:pw@")
        sink = AlertmanagerSink([f"{base}/am?token=k3y"],
                                retry=RetryPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.0))

        async def run() -> None:
            nonlocal feeder
            feeder = SinkFeeder([sink])
            await feeder.add([("alerts", [record()])])
            await feeder.flush()            # returns once the 5th post landed
            assert feeder.retries == FAILURES and feeder.errors == 0
            assert feeder.stall is None     # landed: no longer stalled
            await feeder.close()
        asyncio.run(run())
        assert len(receiver.snapshot()) == FAILURES + 1

    name = f"AlertmanagerSink({receiver.url.replace('http://', 'http://ops@')}/am)"
    stall = seen["stall"]
    assert seen["retries"] == FAILURES - 1
    assert (stall["sink"], stall["attempts"]) == (name, FAILURES - 1), stall
    assert stall["last_error"] == ("ReceiverUnavailable: no Alertmanager accepted 1 alerts: "
                                   f"{name[len('AlertmanagerSink('):-1]}: HTTP 503"), stall
    reason = seen["reason"]
    assert reason.startswith(f"the stop waited on {name}, whose writes have failed for "), reason
    assert "it holds 1 unwritten record(s) (alerts 1)" in reason
    assert "restores its last checkpoint and makes them again" in reason
    for text in (str(stall), reason):
        assert "k3y" not in text and "pw@" not in text, text
