"""streams.aggregate_rows: the pipeline's aggregates kept as columns, seen as row dicts.

Everything that read ``Outputs.aggregates`` as a list of dicts (JSONL files, chDB, tests,
the fault suite's oracle) must see exactly the dicts the pipeline built before; a
columnar sink gets the columns themselves.
"""

from __future__ import annotations

import pickle

import pytest

from streams.aggregate_rows import COLUMNS, AggregateRows
from streams.pipeline import Pipeline
from tests.sinks.test_sinks_columns import ColumnarListSink


def row(i: int) -> dict:
    values = (f"2026-11-02T08:{i:02d}:00+08:00", f"2026-11-02T08:{i + 5:02d}:00+08:00",
              f"region=r{i}", {"region": f"r{i}"}, i, i % 3, 1.5 * i, None if i % 2 else 0.5,
              0.1 * i, {"refund": i} if i % 3 else {}, 0)
    return dict(zip(COLUMNS, values))


def test_rows_read_back_as_the_dicts_that_went_in() -> None:
    dicts = [row(i) for i in range(7)]
    rows = AggregateRows(dicts)
    assert list(rows) == dicts and rows == dicts and len(rows) == 7
    assert [list(r) for r in rows] == [list(COLUMNS)] * 7  # key order, as in JSON lines
    assert rows[3] == dicts[3] and rows[-1] == dicts[-1] and rows[2:5] == dicts[2:5]
    assert rows != dicts[:6] and rows != [*dicts[:6], row(8)]
    other = AggregateRows(dicts[:3])
    other.extend(AggregateRows(dicts[3:]))
    assert other == rows
    assert pickle.loads(pickle.dumps(rows)) == rows  # checkpoints pickle the pipeline's outputs
    assert rows.columns["orders"] == list(range(7))


def test_a_row_with_other_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly the keys"):
        AggregateRows([{**row(1), "extra": 1}])
    with pytest.raises(ValueError, match="exactly the keys"):
        AggregateRows().append({k: v for k, v in row(1).items() if k != "intents"})


def test_the_pipelines_aggregates_go_to_a_columnar_sink_as_their_columns() -> None:
    from riskwatch.simulator import SimulationConfig
    from riskwatch.simulator.traffic import generate

    pipeline = Pipeline(keep_aggregates=True)
    for n, (_ts, line) in enumerate(generate(SimulationConfig(days=1, orders_per_day=2_000))):
        pipeline.process(line, source="file", partition=None, offset=n)
    pipeline.flush()
    out = pipeline.drain()
    assert isinstance(out.aggregates, AggregateRows) and len(out.aggregates) > 100
    columnar = ColumnarListSink()
    columnar.add_records("aggregates", out.aggregates)
    columnar.flush()
    assert columnar.arrived == ["columns"]
    assert columnar.records("aggregates") == list(out.aggregates)


def test_a_pipeline_restored_with_rows_as_a_list_keeps_working() -> None:
    """A checkpoint written before this module pickled ``Outputs.aggregates`` as a list."""
    from riskwatch.simulator import SimulationConfig
    from riskwatch.simulator.traffic import generate

    lines = [line for _ts, line in generate(SimulationConfig(days=1, orders_per_day=1_000))]
    whole = Pipeline(keep_aggregates=True)
    restored = Pipeline(keep_aggregates=True)
    for n, line in enumerate(lines):
        whole.process(line, source="file", partition=None, offset=n)
        restored.process(line, source="file", partition=None, offset=n)
        if n == len(lines) // 2:
            restored.out.aggregates = list(restored.out.aggregates)
    whole.flush()
    restored.flush()
    assert list(restored.drain().aggregates) == list(whole.drain().aggregates)
