"""Lateness on event time (ARCHITECTURE.md decision 9): `mark_late` on small Arrow tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from lambdapipe.serving.ddl import SPEED_WATERMARKS
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.speed.records import LATE, mark_late
from lambdapipe.speed.sink import ServingSink

LATENESS = timedelta(minutes=10)
DAYS_AGO = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def classified(minutes: list[float | None], accepted: list[bool] | None = None) -> pa.Table:
    """Rows with event times `DAYS_AGO + m minutes` (None: unparsed), accepted unless said."""
    times = [None if m is None else DAYS_AGO + timedelta(minutes=m) for m in minutes]
    accepted = [True] * len(minutes) if accepted is None else accepted
    return pa.table(
        {
            "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "reason": pa.array([None if a else "not_json" for a in accepted], pa.string()),
            "detail": pa.nulls(len(minutes), pa.string()),
            "accepted": pa.array(accepted, pa.bool_()),
        }
    )


def verdicts(table: pa.Table) -> list[str | None]:
    return table.column("reason").to_pylist()


def test_a_backlog_days_old_is_on_time() -> None:
    """A micro-batch after a long outage: old, but in step with the stream before it."""
    before = DAYS_AGO - timedelta(minutes=2)
    out, newest = mark_late(classified([0, 1, 5, 9.5]), before, LATENESS)
    assert verdicts(out) == [None] * 4 and out.column("accepted").to_pylist() == [True] * 4
    assert newest == DAYS_AGO + timedelta(minutes=9.5)


def test_the_newest_time_of_the_batches_before_sets_the_watermark() -> None:
    before = DAYS_AGO + timedelta(minutes=30)
    out, newest = mark_late(classified([19, 20, 25]), before, LATENESS)
    assert verdicts(out) == [LATE, None, None]  # 19 < 30 - 10; 20 is exactly on the watermark
    assert out.column("accepted").to_pylist() == [False, True, True]
    assert "600s before the newest event time seen (2026-11-28T12:30:00.000Z)" in str(
        out.column("detail")[0]
    )
    assert newest == before  # nothing here is newer


def test_a_batch_spanning_more_than_the_lateness_is_on_time() -> None:
    """Sparse traffic drained in large micro-batches: the batch's own newest does not count."""
    out, newest = mark_late(
        classified([0, 45, None, 3], [True, True, False, True]), DAYS_AGO, LATENESS
    )
    assert verdicts(out) == [None, None, "not_json", None]
    assert out.column("accepted").to_pylist() == [True, True, False, True]
    assert newest == DAYS_AGO + timedelta(minutes=45)


def test_the_first_batch_of_a_query_has_nothing_late() -> None:
    out, newest = mark_late(classified([0, 120]), None, LATENESS)
    assert verdicts(out) == [None, None] and newest == DAYS_AGO + timedelta(minutes=120)


def test_nothing_accepted_leaves_the_newest_where_it_was() -> None:
    out, newest = mark_late(classified([None], [False]), DAYS_AGO, LATENESS)
    assert verdicts(out) == ["not_json"] and newest == DAYS_AGO
    empty, none = mark_late(classified([]), None, LATENESS)
    assert empty.num_rows == 0 and none is None


def test_the_newest_time_is_kept_per_batch_in_the_store(engine: EmbeddedStore) -> None:
    """What a restarted job, or a replayed batch, reads back: the batch before's newest."""
    engine.execute(f"TRUNCATE TABLE {SPEED_WATERMARKS}")
    sink = ServingSink(engine, retry_s=1)
    first, second = DAYS_AGO, DAYS_AGO + timedelta(minutes=5)
    assert sink.newest_before("query", 0) is None
    sink.record_newest("query", 0, first)
    sink.record_newest("query", 1, second)
    sink.record_newest("query", 1, second)  # a replay of batch 1: one row
    assert sink.newest_before("query", 1) == first  # replaying batch 1 decides as the first time
    assert sink.newest_before("query", 2) == second
    assert sink.newest_before("another query", 2) is None
    assert engine.query_rows(f"SELECT count() AS n FROM {SPEED_WATERMARKS}")[0]["n"] == 2
