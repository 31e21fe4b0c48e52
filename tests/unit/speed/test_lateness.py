"""Lateness on event time (ARCHITECTURE.md decision 9): `mark_late` on small Arrow tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from lambdapipe.speed.records import LATE, mark_late

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
    """The first micro-batch after a long outage: old, but in step with itself."""
    out, newest = mark_late(classified([0, 1, 5, 9.5]), None, LATENESS)
    assert verdicts(out) == [None] * 4 and out.column("accepted").to_pylist() == [True] * 4
    assert newest == DAYS_AGO + timedelta(minutes=9.5)


def test_the_newest_time_seen_before_sets_the_watermark() -> None:
    before = DAYS_AGO + timedelta(minutes=30)
    out, newest = mark_late(classified([19, 20, 25]), before, LATENESS)
    assert verdicts(out) == [LATE, None, None]  # 19 < 30 - 10; 20 is exactly on the watermark
    assert out.column("accepted").to_pylist() == [False, True, True]
    assert "600s before the newest event time seen (2026-11-28T12:30:00.000Z)" in str(
        out.column("detail")[0]
    )
    assert newest == before  # nothing here is newer


def test_the_batch_own_newest_counts_and_rejected_rows_stay_as_they_were() -> None:
    out, newest = mark_late(classified([0, 45, None, 3], [True, True, False, True]), None, LATENESS)
    assert verdicts(out) == [LATE, None, "not_json", LATE]
    assert out.column("accepted").to_pylist() == [False, True, False, False]
    assert newest == DAYS_AGO + timedelta(minutes=45)


def test_a_replay_decides_identically() -> None:
    """Replayed after a crash, the store may already hold part of the batch: same verdicts."""
    batch = classified([10, 40, 31])
    first, newest = mark_late(batch, DAYS_AGO, LATENESS)
    again, _ = mark_late(batch, DAYS_AGO + timedelta(minutes=40), LATENESS)
    assert verdicts(first) == verdicts(again) == [LATE, None, None]
    assert newest == DAYS_AGO + timedelta(minutes=40)


def test_nothing_accepted_leaves_the_watermark_where_it_was() -> None:
    out, newest = mark_late(classified([None], [False]), DAYS_AGO, LATENESS)
    assert verdicts(out) == ["not_json"] and newest == DAYS_AGO
    empty, none = mark_late(classified([]), None, LATENESS)
    assert empty.num_rows == 0 and none is None
