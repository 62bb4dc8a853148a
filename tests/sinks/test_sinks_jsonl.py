"""JsonlSink: valid UTF-8 JSON lines, Chinese text intact, extra keys kept, nothing torn."""

from __future__ import annotations

import datetime as dt
import decimal
import errno
import json
import os
import pathlib
from typing import Any

import pytest

from riskwatch.errors import ConfigError, SinkError
from sinks import JsonlSink, RetryPolicy


def read_lines(path: pathlib.Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def test_every_kind_round_trips_with_chinese_text_and_extra_keys(
        tmp_path: pathlib.Path, records: dict[str, list[dict[str, Any]]]) -> None:
    paths = {kind: tmp_path / "out" / f"{kind}.jsonl" for kind in records}
    with JsonlSink(paths) as sink:
        for kind, rows in records.items():
            for row in rows:
                sink.add(kind, row, token="orders:0:0-9")
    for kind, rows in records.items():
        assert read_lines(paths[kind]) == rows  # extra keys included
    raw = paths["alerts"].read_bytes()
    assert "广东/中通 催件投诉".encode() in raw and b"\\u" not in raw  # not ASCII-escaped


def test_kinds_without_a_path_are_ignored(tmp_path: pathlib.Path) -> None:
    with JsonlSink({"alerts": tmp_path / "alerts.jsonl"}) as sink:
        sink.add("complaints", {"complaint_id": "c1"})
        sink.add("alerts", {"alert_id": "a1"})
        assert sink.pending() == {"alerts": 1}
    assert os.listdir(tmp_path) == ["alerts.jsonl"]


def test_append_mode_keeps_and_write_mode_truncates(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "scores.jsonl"
    for mode, merchant in (("a", "m1"), ("a", "m2")):
        with JsonlSink({"scores": path}, mode=mode) as sink:
            sink.add("scores", {"merchant_id": merchant})
    assert [r["merchant_id"] for r in read_lines(path)] == ["m1", "m2"]
    with JsonlSink({"scores": path}, mode="w") as sink:
        sink.add("scores", {"merchant_id": "m3"})
        sink.flush()
        sink.add("scores", {"merchant_id": "m4"})  # later flushes of the same sink append
    assert [r["merchant_id"] for r in read_lines(path)] == ["m3", "m4"]


def test_non_json_types_are_encoded(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.jsonl"
    ts = dt.datetime(2026, 11, 2, 8, 15, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with JsonlSink({"events": path}) as sink:
        sink.add("events", {"ts": ts, "amount": decimal.Decimal("199.90"),
                            "tags": {"b", "a"}})
    assert read_lines(path) == [
        {"ts": "2026-11-02T08:15:00+08:00", "amount": "199.90", "tags": ["a", "b"]}]


class TornFile:
    """A file whose first write stores half the data and then fails with a full disk."""

    def __init__(self, real: Any) -> None:
        self.real, self.failed = real, False

    def fileno(self) -> int:
        return self.real.fileno()

    def write(self, data: memoryview) -> int:
        if not self.failed:
            self.failed = True
            self.real.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real.write(data)

    def close(self) -> None:
        self.real.close()


def test_a_torn_write_is_cut_back_and_retried(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "alerts.jsonl"
    delays: list[float] = []
    with JsonlSink({"alerts": path}, sleep=delays.append) as sink:
        sink.add("alerts", {"alert_id": "a0"})
        sink.flush()
        sink._files["alerts"] = TornFile(sink._files["alerts"])  # inject the fault
        sink.add("alerts", {"alert_id": "a1", "summary": "浙江 圆通 破损投诉上升"})
        sink.add("alerts", {"alert_id": "a2"})
    assert len(delays) == 1  # ENOSPC is transient: retried inside flush
    assert [r["alert_id"] for r in read_lines(path)] == ["a0", "a1", "a2"]


def test_a_record_that_cannot_be_encoded_fails_without_writing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = JsonlSink({"alerts": path}, sleep=lambda s: None, retry=RetryPolicy(max_attempts=1))
    sink.setup()
    sink.add("alerts", {"alert_id": "a1", "bad": object()})
    with pytest.raises(SinkError, match="TypeError"):
        sink.flush()
    assert path.read_bytes() == b"" and sink.pending() == {"alerts": 1}
    sink.drain()
    sink.close()


def test_an_unopenable_path_is_a_sink_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SinkError, match="cannot open"):
        JsonlSink({"alerts": tmp_path / "a_file" / "alerts.jsonl"}).setup()


@pytest.mark.parametrize(("paths", "kwargs", "message"), [
    ({"alert": "x.jsonl"}, {}, "unknown kind"),
    ({"alerts": "x.jsonl"}, {"mode": "x"}, "mode"),
    ({"alerts": "x.jsonl", "scores": "./x.jsonl"}, {}, "both write to"),
])
def test_bad_options_raise_config_error(paths: dict[str, str], kwargs: dict[str, str],
                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        JsonlSink(paths, **kwargs)


def test_a_full_disk_is_retried_briefly_then_raised(tmp_path: pathlib.Path) -> None:
    class FullDisk(JsonlSink):
        def write(self, kind: str, records: list[dict[str, Any]], token: str | None) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    delays: list[float] = []
    sink = FullDisk({"alerts": tmp_path / "alerts.jsonl"}, sleep=delays.append)
    sink.add("alerts", {"alert_id": "a1"})
    with pytest.raises(SinkError, match="failed 5 times: OSError"):
        sink.flush()
    assert len(delays) == 4 and sum(delays) < 2
    assert sink.pending() == {"alerts": 1}
