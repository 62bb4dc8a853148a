"""benchmarks/intent_mix_detectability.py: the evidence of a shift is n x KL(during ||
before) counted from a replay's aggregates, and a shift holding less than the stage's
alarm level is reported as not detectable."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "intent_mix_detectability.py"
_spec = importlib.util.spec_from_file_location("intent_mix_detectability", _PATH)
detectability = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(detectability)

TZ = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 11, 4, 12, 0, tzinfo=TZ)


def _week(tmp_path: Path, during: dict[str, int], hours: float = 2.0) -> tuple[Path, Path]:
    end = START + dt.timedelta(hours=hours)
    manifest = {"incidents": [
        {"id": "inc-1", "kind": "intent_mix_shift", "dimensions": {"category": "服饰"},
         "intent": "delivery_delay", "start": START.isoformat(), "end": end.isoformat()},
        {"id": "inc-2", "kind": "carrier_damage", "dimensions": {"carrier": "中通"},
         "start": START.isoformat(), "end": end.isoformat()}]}
    lines = []
    at = START - dt.timedelta(hours=10)
    while at < end:
        intents = during if at >= START else {"delivery_delay": 1, "quality": 3}
        for name, dims in (("category=服饰", {"category": "服饰"}),
                           ("category=数码", {"category": "数码"})):
            lines.append({"bucket_start": at.isoformat(), "slice": name, "dimensions": dims,
                          "complaints": sum(intents.values()), "intents": intents})
        at += dt.timedelta(minutes=5)
    truth, aggregates = tmp_path / "m.json", tmp_path / "agg.jsonl"
    truth.write_text(json.dumps(manifest, ensure_ascii=False))
    aggregates.write_text("".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) + "\n"
                                  for x in lines))
    return truth, aggregates


def test_a_clear_shift_is_detectable_with_the_oracle_evidence(tmp_path):
    [row] = detectability.shifts(*_week(tmp_path, {"delivery_delay": 3, "quality": 1}))
    assert row["before"] == [120, 480] and row["during"] == [72, 96]
    assert (row["p0"], row["p1"]) == (0.25, 0.75)
    kl = 0.75 * math.log(3.0) + 0.25 * math.log(1.0 / 3.0)
    assert row["evidence"] == pytest.approx(96 * kl)
    assert row["level"] == pytest.approx(8.0 + math.log(13))     # 2 categories: no kind term
    assert row["detectable"]
    assert row["best_hours"] == pytest.approx(row["level"] / (96 * kl / 2.0))
    assert row["first30"] == [18, 24]


def test_a_weak_shift_is_not_detectable(tmp_path):
    [row] = detectability.shifts(*_week(tmp_path, {"delivery_delay": 3, "quality": 5}, hours=0.5))
    assert row["p1"] == pytest.approx(3 / 8)
    assert row["evidence"] < row["level"] and not row["detectable"]


def test_the_script_prints_a_verdict_per_shift(tmp_path, capsys):
    truth, aggregates = _week(tmp_path, {"delivery_delay": 3, "quality": 1})
    assert detectability.main(["--truth", str(truth), "--aggregates", str(aggregates)]) == 0
    out = capsys.readouterr().out
    assert "inc-1" in out and "detectable" in out and "inc-2" not in out
    assert out.strip().endswith("1 shifts detectable")
