"""The BatchingSink contract: batching, tokens, retries inside flush, nothing dropped."""

from __future__ import annotations

import errno
import logging
from typing import Any

import pytest

from riskwatch.errors import ConfigError, SinkBackpressure, SinkError
from sinks import KINDS, ListSink, RetryPolicy


class FailingSink(ListSink):
    """ListSink whose first ``failures`` writes raise ``error``."""

    def __init__(self, error: BaseException, failures: int, **kwargs: Any) -> None:
        self.delays: list[float] = []
        super().__init__(sleep=self.delays.append, **kwargs)
        self.error, self.failures, self.attempts = error, failures, 0

    def write(self, kind: str, records: list[dict[str, Any]], token: str | None) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise self.error
        super().write(kind, records, token)


def test_add_rejects_an_unknown_kind() -> None:
    with pytest.raises(SinkError, match="unknown record kind 'alert'"):
        ListSink().add("alert", {})


def test_records_are_batched_per_kind_and_token() -> None:
    sink = ListSink()
    for i in range(3):
        sink.add("alerts", {"i": i}, token="orders:0:0-9")
        sink.add("alerts", {"i": i}, token="orders:1:0-9")
    sink.add("scores", {"i": 0})
    assert sink.batches == [] and sink.pending() == {"alerts": 6, "scores": 1}
    sink.flush()
    assert [(kind, len(rows), token) for kind, rows, token in sink.batches] == [
        ("alerts", 3, "orders:0:0-9"), ("alerts", 3, "orders:1:0-9"), ("scores", 1, None)]
    assert sink.pending() == {}


def test_a_full_batch_is_split_with_deterministic_tokens() -> None:
    sink = ListSink(batch_size=2)
    for _ in range(2):  # the second round is a re-delivery of the same source range
        for i in range(5):
            sink.add("events", {"i": i}, token="orders:0:100-104")
        sink.flush()
    tokens = [token for _kind, _rows, token in sink.batches]
    # Same records in the same order -> same batches and tokens, so a destination with
    # token deduplication drops the whole re-delivery.
    assert tokens == ["orders:0:100-104", "orders:0:100-104#1", "orders:0:100-104#2"] * 2
    assert [len(rows) for _kind, rows, _token in sink.batches] == [2, 2, 1] * 2


def test_flush_retries_a_transient_error_until_the_write_lands() -> None:
    sink = FailingSink(TimeoutError("server busy"), failures=6,
                       retry=RetryPolicy(initial_delay=0.5, max_delay=4.0, jitter=0.0))
    sink.add("complaints", {"complaint_id": "c1"})
    sink.flush()
    assert sink.attempts == 7
    assert sink.delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # capped exponential backoff
    assert sink.records("complaints") == [{"complaint_id": "c1"}]
    assert sink.pending() == {}


def test_backpressure_waits_the_time_the_sink_asks_for() -> None:
    sink = FailingSink(SinkBackpressure(retry_after=2.5), failures=1)
    sink.add("alerts", {"alert_id": "a1"})
    sink.flush()
    assert sink.delays == [2.5] and len(sink.batches) == 1


def test_a_permanent_error_raises_sink_error_and_keeps_the_records() -> None:
    sink = FailingSink(ValueError("bad row"), failures=10**9,
                       retry=RetryPolicy(max_attempts=3))
    sink.add("aggregates", {"slice": "all"}, token="orders:0:1-2")
    with pytest.raises(SinkError, match="failed 3 times: ValueError: bad row") as info:
        sink.flush()
    assert isinstance(info.value.__cause__, SinkError)
    assert isinstance(info.value.__cause__.__cause__, ValueError)
    assert sink.attempts == 3 and len(sink.delays) == 2
    assert sink.pending() == {"aggregates": 1}  # nothing unwritten is dropped
    sink.failures = 0  # the destination is fixed: the next flush writes the kept batch
    sink.flush()
    assert sink.batches == [("aggregates", [{"slice": "all"}], "orders:0:1-2")]


def test_a_bounded_transient_retry_gives_up_with_sink_error() -> None:
    sink = FailingSink(OSError(errno.ENOSPC, "disk full"), failures=10**9,
                       retry=RetryPolicy(max_transient_attempts=4))
    sink.add("events", {"event_id": "e1"})
    with pytest.raises(SinkError, match="failed 4 times"):
        sink.flush()
    assert sink.pending() == {"events": 1}


def test_other_kinds_are_written_when_one_batch_fails() -> None:
    class OneBadKind(ListSink):
        def write(self, kind: str, records: list[dict[str, Any]], token: str | None) -> None:
            if kind == "alerts":
                raise SinkError("alerts table is broken")
            super().write(kind, records, token)

    sink = OneBadKind(sleep=lambda s: None)
    sink.add("alerts", {"alert_id": "a1"})
    sink.add("scores", {"merchant_id": "m1"})
    with pytest.raises(SinkError, match="1 batch"):
        sink.flush()
    assert sink.records("scores") == [{"merchant_id": "m1"}]
    assert sink.pending() == {"alerts": 1}
    assert sink.drain() == [("alerts", None, [{"alert_id": "a1"}])]
    assert sink.pending() == {}


def test_close_flushes_then_tears_down_once() -> None:
    class Tracked(ListSink):
        teardowns = 0

        def teardown(self) -> None:
            self.teardowns += 1

    with Tracked() as sink:
        sink.add("dead_letters", {"dead_letter_id": "d1"})
    sink.close()
    assert sink.records("dead_letters") == [{"dead_letter_id": "d1"}]
    assert sink.teardowns == 1
    with pytest.raises(SinkError, match="closed"):
        sink.add("dead_letters", {"dead_letter_id": "d2"})


def test_one_summary_log_line_per_flush(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink()
    for kind in sorted(KINDS):
        sink.add(kind, {})
    with caplog.at_level(logging.INFO, logger="sinks.base"):
        sink.flush()
        sink.flush()  # nothing buffered: nothing to say
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith("ListSink flushed 6 records in 6 batches (aggregates=1 alerts=1 "
                              "complaints=1 dead_letters=1 events=1 scores=1) in ")
    assert message.endswith("s, 0 retries")


@pytest.mark.parametrize("kwargs", [
    {"initial_delay": 0}, {"initial_delay": 5, "max_delay": 1}, {"multiplier": 0.5},
    {"jitter": 1.0}, {"max_attempts": 0}, {"max_transient_attempts": 0}])
def test_retry_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        ListSink(batch_size=0)


def test_the_retry_line_names_a_token_only_when_there_is_one(caplog: pytest.LogCaptureFixture) -> None:
    """It said "(token None)" for every replay batch, which reads like a missing credential."""
    sink = FailingSink(TimeoutError("server busy"), failures=1,
                       retry=RetryPolicy(initial_delay=0.5, max_delay=4.0, jitter=0.0))
    with caplog.at_level(logging.WARNING, logger="sinks.base"):
        sink.add("alerts", {"alert_id": "a1"})
        sink.flush()
        sink.failures = 1
        sink.add("alerts", {"alert_id": "a2"}, token="orders:0:1-2")
        sink.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "FailingSink: writing 1 alerts records failed (attempt 1, TimeoutError: server busy); "
        "retry in 0.50s",
        "FailingSink: writing 1 alerts records (token 'orders:0:1-2') failed (attempt 1, "
        "TimeoutError: server busy); retry in 0.50s"]


def test_the_retry_line_and_the_error_keep_no_personal_data_nor_password(
        caplog: pytest.LogCaptureFixture) -> None:
    """A server's parse error may quote the row it choked on, a library's error the URL
    with its password: the log line and the SinkError show neither."""
    quoting = ValueError("Cannot parse input: '13812345678 张伟' at row 3 of "
                         "http://writer:s3cret@ch:8123/?query=insert&password=s3cret")
    sink = FailingSink(quoting, failures=10**9, retry=RetryPolicy(max_attempts=2, jitter=0.0))
    sink.add("complaints", {"complaint_id": "c1"})
    with caplog.at_level(logging.WARNING, logger="sinks.base"), \
            pytest.raises(SinkError) as info:
        sink.flush()
    (line,) = [r.getMessage() for r in caplog.records]
    for text in (line, str(info.value)):
        assert "13812345678" not in text and "s3cret" not in text, text
        assert "Cannot parse input" in text and "http://writer@ch:8123/" in text, text
