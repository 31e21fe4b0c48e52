"""The RAW contract: the one UUID -> STRING rule, and idempotent loads into a DuckDB file."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from lambdapipe.contracts.clickhouse import enriched_columns
from lambdapipe.errors import Problem
from lambdapipe.warehouse.duckdb import DuckDBWarehouse
from lambdapipe.warehouse.raw import RAW_TABLES, USER_EVENTS, uuid_string, uuid_strings
from tests import warehouse_sample as ws

CANONICAL = "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d"


@pytest.mark.parametrize(
    "spelling",
    [
        CANONICAL,
        CANONICAL.upper(),
        "{" + CANONICAL + "}",
        CANONICAL.replace("-", ""),
        uuid.UUID(CANONICAL),
        uuid.UUID(CANONICAL).bytes,
    ],
)
def test_every_spelling_of_a_uuid_becomes_one_string(spelling: object) -> None:
    assert uuid_string(spelling) == CANONICAL


def test_the_rule_over_arrow_columns() -> None:
    raw = uuid.UUID(CANONICAL).bytes
    assert uuid_strings(pa.array([CANONICAL.upper(), None])).to_pylist() == [CANONICAL, None]
    assert uuid_strings(pa.array([raw], pa.binary(16))).to_pylist() == [CANONICAL]
    assert uuid_strings(pa.array(["{" + CANONICAL + "}"])).to_pylist() == [CANONICAL]
    with pytest.raises(Problem, match="not a UUID"):
        uuid_strings(pa.array(["not-a-uuid"]))


def test_raw_mirrors_the_serving_columns() -> None:
    names = USER_EVENTS.column_names
    assert names[: len(enriched_columns("user_event"))] == tuple(
        n for n, _ in enriched_columns("user_event")
    )
    for table in RAW_TABLES.values():
        assert {"batch_day", "loaded_at", "batch_id", "file_name"} <= set(table.column_names)


def test_load_raw_replaces_a_day_whole(tmp_path: Path) -> None:
    sample = ws.build_sample(sessions_per_day=5)
    first, second = ws.DAYS
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        rows = sample.day_rows("user_events", first)
        for _ in range(2):
            assert wh.load_raw("user_events", rows, "b1", "a.parquet", first) == rows.num_rows
        wh.load_raw("user_events", sample.day_rows("user_events", second), "b1", None, second)
        count = "select batch_day, count(*) as n from raw.user_events group by 1 order by 1"
        before = wh.query_arrow(count).to_pylist()
        assert before[0] == {"batch_day": first, "n": rows.num_rows}
        # a smaller re-run of the first day leaves exactly its rows, the second day untouched
        wh.load_raw("user_events", rows.slice(0, 3), "b2", None, first)
        after = wh.query_arrow(count).to_pylist()
        assert after == [{"batch_day": first, "n": 3}, before[1]]
        batches = wh.query_arrow(
            f"select distinct batch_id from raw.user_events where batch_day = '{first}'"
        )
        assert batches.column("batch_id").to_pylist() == ["b2"]


def test_a_load_that_breaks_the_contract_changes_nothing(tmp_path: Path) -> None:
    sample = ws.build_sample(sessions_per_day=3)
    day = ws.DAYS[0]
    rows = sample.day_rows("transactions", day)
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        wh.load_raw("transactions", rows, "b1", None, day)
        with pytest.raises(Problem, match="columns the contract does not have: coupon"):
            wh.load_raw(
                "transactions",
                rows.append_column("coupon", pa.array(["x"] * len(rows))),
                "b2",
                None,
                day,
            )
        with pytest.raises(Problem, match="required column 'status'"):
            wh.load_raw("transactions", rows.drop_columns(["status"]), "b2", None, day)
        n = wh.query_arrow("select count(*) as n from raw.transactions").column("n")[0].as_py()
        assert n == rows.num_rows
    assert date.fromisoformat("2026-03-02") == day


def test_a_streamed_load_equals_a_whole_one_and_a_bad_batch_changes_nothing(
    tmp_path: Path,
) -> None:
    sample = ws.build_sample(sessions_per_day=5)
    day = ws.DAYS[0]
    rows = sample.day_rows("user_events", day)
    every = "select * exclude (loaded_at) from raw.user_events order by event_id"
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        wh.load_raw("user_events", rows, "b1", "a.parquet", day)
        whole = wh.query_arrow(every)
        stream = pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches(max_chunksize=4))
        assert wh.load_raw("user_events", stream, "b1", "a.parquet", day) == rows.num_rows
        assert wh.query_arrow(every) == whole
        # the last batch breaks the contract: the day keeps its rows, the error says why
        bad = rows.slice(0, 2).set_column(
            rows.schema.get_field_index("event_id"), "event_id", pa.array(["not-a-uuid"] * 2)
        )
        batches = [*rows.to_batches(max_chunksize=4), *bad.to_batches()]
        with pytest.raises(Problem, match="not a UUID"):
            wh.load_raw(
                "user_events",
                pa.RecordBatchReader.from_batches(rows.schema, batches),
                "b2",
                None,
                day,
            )
        assert wh.query_arrow(every) == whole
