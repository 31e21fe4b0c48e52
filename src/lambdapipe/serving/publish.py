"""Batch publication: one curated day into the batch twins of the rollups, atomically per table.

A day's curated rows (events, transactions, sessions: the realtime tables' columns) are staged
in the store, each twin's day is built from them with the realtime view's own SELECT
(`MaterializedView.select_over`), then swapped in with `ALTER TABLE ... REPLACE PARTITION`
(atomic: a reader sees the old day or the new one, never a part of it). Only after every twin
is replaced is the publication recorded in `batch_publications`, which moves the watermark.
A (day, run) already published is not published again. docs/serving.md, "Batch publication".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final, TypeAlias

import pyarrow as pa

from lambdapipe.errors import Problem
from lambdapipe.serving.ddl import BATCH_TWINS, PUBLICATIONS, STAGED_SOURCES
from lambdapipe.serving.store import ServingStore

# Rows per staging insert: a day of millions of events is sent in pieces of this size.
STAGING_BATCH_ROWS: Final = 200_000
Rows: TypeAlias = pa.Table | pa.RecordBatchReader


@dataclass(frozen=True)
class CuratedDay:
    """One batch day to publish: its run id and its rows per realtime table name
    (`user_events_realtime`, `transactions_realtime`, `user_sessions_realtime`)."""

    day: date
    run_id: str
    rows: Mapping[str, Rows]


@dataclass
class Publication:
    """What publishing one day did: `published` is False when that run was already there."""

    day: date
    run_id: str
    published: bool
    previous_run: str | None = None
    rows: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """The days published so far: one unbroken range (None when nothing is)."""

    first: date | None
    watermark: date | None

    def allows(self, day: date) -> bool:
        """True when publishing `day` keeps the published days one unbroken range."""
        if self.first is None or self.watermark is None:
            return True
        one = timedelta(days=1)
        return self.first - one <= day <= self.watermark + one


def published(store: ServingStore) -> Published:
    """The first and the last (the watermark) published day."""
    row = store.query_rows(
        f"SELECT minOrNull(day) AS first, maxOrNull(day) AS last FROM {PUBLICATIONS}"  # noqa: S608
    )[0]
    return Published(row["first"], row["last"])


def run_of(store: ServingStore, day: date) -> str | None:
    """The batch run `day` was last published from, if it was."""
    rows = store.query_rows(
        f"SELECT argMax(run_id, published_at) AS run_id, count() AS n FROM {PUBLICATIONS} "  # noqa: S608
        "WHERE day = {day:Date}",
        {"day": day},
    )
    return str(rows[0]["run_id"]) if rows and rows[0]["n"] else None


def publication_order(days: Iterable[date], done: Published) -> list[date]:
    """`days` in an order that keeps the published days one unbroken range at every step
    (days after the first published one ascending, days before it descending), or a Problem
    naming the gap."""
    wanted = sorted(set(days))
    if not wanted:
        return []
    if done.first is None or done.watermark is None:
        return wanted
    before = [d for d in wanted if d < done.first]
    after = [d for d in wanted if d >= done.first]
    covered = set(wanted) | {
        done.first + timedelta(days=i) for i in range((done.watermark - done.first).days + 1)
    }
    low, high = min(covered), max(covered)
    missing = [low + timedelta(days=i) for i in range((high - low).days + 1)]
    gap = [d for d in missing if d not in covered]
    if gap:
        raise Problem(
            f"publishing {wanted[0]}..{wanted[-1]} would leave unpublished days between the "
            f"published ones ({done.first}..{done.watermark}): {gap[0]}..{gap[-1]}",
            hint=f"publish them too: --from {min(low, wanted[0])} --to {max(high, wanted[-1])}",
        )
    return after + before[::-1]


def _pieces(rows: Rows) -> Iterable[pa.Table]:
    if isinstance(rows, pa.Table):
        rows = pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches())
    pending: list[pa.RecordBatch] = []
    size = 0
    for piece in rows:
        pending.append(piece)
        size += piece.num_rows
        if size >= STAGING_BATCH_ROWS:
            yield pa.Table.from_batches(pending)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _stage(store: ServingStore, realtime: str, rows: Rows) -> int:
    """Insert `rows` into the staging table of `realtime`; the rows staged (checked)."""
    staging = STAGED_SOURCES[realtime]
    store.execute(f"TRUNCATE TABLE {staging}")
    known = {str(r["name"]) for r in store.query_rows(f"DESCRIBE TABLE {staging}")}
    sent = 0
    for piece in _pieces(rows):
        sent += store.insert_arrow(
            staging, piece.select([n for n in piece.column_names if n in known])
        )
    staged = int(store.query_rows(f"SELECT count() AS n FROM {staging}")[0]["n"])  # noqa: S608
    if staged != sent:
        raise Problem(f"staging {realtime}: sent {sent} rows, the store holds {staged}")
    return sent


def _day_rows(store: ServingStore, table: str, day_of: str, day: date) -> int:
    rows = store.query_rows(
        f"SELECT count() AS n FROM {table} WHERE {day_of} = {{day:Date}}",  # noqa: S608
        {"day": day},
    )
    return int(rows[0]["n"])


def _check_unbroken(store: ServingStore, day: date) -> None:
    done = published(store)
    if not done.allows(day):
        raise Problem(
            f"{day} is not next to the published days ({done.first}..{done.watermark}): "
            "the published days must stay one unbroken range",
            hint="publish the days in between too (lambdapipe batch publish --from A --to B)",
        )


def publish_day(store: ServingStore, curated: CuratedDay, *, force: bool = False) -> Publication:
    """Replace `curated.day` in every batch twin, then record the publication (the watermark).

    Publishing the run already recorded for the day does nothing (unless `force`).
    """
    day = curated.day
    previous = run_of(store, day)
    if previous == curated.run_id and not force:
        return Publication(day, curated.run_id, False, previous)
    _check_unbroken(store, day)
    missing = sorted(set(STAGED_SOURCES) - set(curated.rows))
    if missing:
        raise Problem(f"{day}: no curated rows given for {', '.join(missing)}")
    counts = {
        realtime.removesuffix("_realtime"): _stage(store, realtime, curated.rows[realtime])
        for realtime in STAGED_SOURCES
    }
    return _swap_in(store, day, curated.run_id, previous, counts)


def publish_staged(
    store: ServingStore, day: date, run_id: str, *, force: bool = False
) -> Publication:
    """`publish_day` for rows the caller already put in the staging tables
    (`STAGED_SOURCES`, e.g. with an INSERT ... SELECT inside the store)."""
    previous = run_of(store, day)
    if previous == run_id and not force:
        return Publication(day, run_id, False, previous)
    _check_unbroken(store, day)
    counts = {
        realtime.removesuffix("_realtime"): int(
            store.query_rows(f"SELECT count() AS n FROM {staging}")[0]["n"]  # noqa: S608
        )
        for realtime, staging in STAGED_SOURCES.items()
    }
    return _swap_in(store, day, run_id, previous, counts)


def _swap_in(
    store: ServingStore, day: date, run_id: str, previous: str | None, counts: dict[str, int]
) -> Publication:
    """Build every twin's day from the staged rows, swap it in, record the publication."""
    for twin in BATCH_TWINS:
        store.execute(f"TRUNCATE TABLE {twin.staging}")
        source = STAGED_SOURCES[twin.view.source]
        store.execute(f"INSERT INTO {twin.staging} {twin.view.select_over(source)}")
        built = _day_rows(store, twin.staging, twin.day, day)
        # both atomic; REPLACE from an empty partition is refused by newer servers
        swap = (
            f"REPLACE PARTITION {{day:Date}} FROM {twin.staging}"
            if built
            else ("DROP PARTITION {day:Date}")
        )
        store.execute(f"ALTER TABLE {twin.name} {swap}", {"day": day})
        counts[twin.name] = _day_rows(store, twin.name, twin.day, day)
        if counts[twin.name] != built:
            raise Problem(f"{day}: {twin.name} holds {counts[twin.name]} rows, built {built}")
    store.execute(
        f"INSERT INTO {PUBLICATIONS} (day, run_id, published_at, rows) SELECT {{day:Date}}, "
        "{run:String}, now64(3), mapFromArrays({tables:Array(String)}, {counts:Array(UInt64)})",
        {
            "day": day,
            "run": run_id,
            "tables": list(counts),
            "counts": list(counts.values()),
        },
    )
    for staging in (*STAGED_SOURCES.values(), *(twin.staging for twin in BATCH_TWINS)):
        store.execute(f"TRUNCATE TABLE {staging}")
    return Publication(day, run_id, True, previous, counts)
