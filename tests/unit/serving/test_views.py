"""Each MV equals the same aggregate computed from its base table, before and after merges."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bench.serving_sample import Batch, make_batch
from lambdapipe.serving import queries
from lambdapipe.serving.ddl import (
    DISTINCT,
    FUNNEL_STEP_COUNTS,
    FUNNEL_STEPS,
    LAG_ACCURACY,
    MATERIALIZED_VIEWS,
    funnel_step_flags,
)
from lambdapipe.serving.embedded import EmbeddedStore
from tests.unit.serving.loading import load

MERGE = DISTINCT.replace("(", "Merge(", 1)
REACHED = ", ".join(f"sum(a.reached_{step})" for step in FUNNEL_STEPS)
REACHED_FROM_COUNTS = ", ".join(f"countIf({flag})" for flag in funnel_step_flags())


def ingestion(table: str) -> tuple[str, str]:
    return (
        f"SELECT second, sum(a.rows), max(a.newest), "
        f"quantileDDMerge({LAG_ACCURACY}, 0.95)(a.lag_ms) FROM ingestion_agg AS a "
        f"WHERE a.table = '{table}' GROUP BY ALL ORDER BY ALL",
        f"SELECT toDateTime(ingested_at, 'UTC') AS second, count(), max(timestamp), "
        f"quantileDD({LAG_ACCURACY}, 0.95)(dateDiff('millisecond', timestamp, ingested_at)) "
        f"FROM {table} GROUP BY ALL ORDER BY ALL",
    )


# (query over the MV target, the same aggregate over the base table)
EQUIVALENT = {
    "user_activity_summary_mv": (
        "SELECT minute, event_type, user_tier, device_type, sum(a.events) AS e, "
        f"{MERGE}(a.users) AS u FROM user_activity_summary_agg AS a "
        "GROUP BY ALL ORDER BY ALL",
        "SELECT toStartOfMinute(timestamp) AS minute, event_type, user_tier, device_type, "
        f"count() AS e, {DISTINCT}(user_id) AS u FROM user_events_realtime "
        "GROUP BY ALL ORDER BY ALL",
    ),
    # The funnel is defined on closed sessions (docs/serving.md): step k = steps 1..k present.
    "conversion_funnel_mv": (
        f"SELECT day, user_tier, device_type, sum(a.sessions), {REACHED} "
        "FROM conversion_funnel_agg AS a GROUP BY ALL ORDER BY ALL",
        f"SELECT toDate(session_start) AS day, user_tier, device_type, count(), "
        f"{REACHED_FROM_COUNTS} FROM user_sessions_realtime GROUP BY ALL ORDER BY ALL",
    ),
    "product_performance_mv": (
        "SELECT day, product_id, sum(a.views) AS v, sum(a.add_to_carts) AS c, "
        "sum(a.purchases) AS p, sum(a.units) AS n, sum(a.revenue) AS r, "
        f"{MERGE}(a.viewers) AS w, {MERGE}(a.buyers) AS b "
        "FROM product_performance_agg AS a GROUP BY ALL ORDER BY ALL",
        "SELECT toDate(timestamp) AS day, assumeNotNull(product_id) AS product_id, "
        "countIf(event_type = 'product_view') AS v, countIf(event_type = 'add_to_cart') AS c, "
        "countIf(event_type = 'purchase') AS p, "
        "sumIf(ifNull(quantity, 0), event_type = 'purchase') AS n, "
        "toDecimal128(sumIf(ifNull(amount, 0), event_type = 'purchase'), 2) AS r, "
        f"{DISTINCT.replace('(', 'If(', 1)}(user_id, event_type = 'product_view') AS w, "
        f"{DISTINCT.replace('(', 'If(', 1)}(user_id, event_type = 'purchase') AS b "
        "FROM user_events_realtime WHERE product_id IS NOT NULL GROUP BY ALL ORDER BY ALL",
    ),
    "user_tier_performance_mv": (
        "SELECT day, user_tier, sum(a.sessions) AS s, sum(a.converted_sessions) AS c, "
        f"sum(a.events) AS e, sum(a.revenue) AS r, {MERGE}(a.users) AS u, "
        "round(avgMerge(a.avg_duration_s), 6) AS d, "
        "round(avgMerge(a.avg_session_revenue), 6) AS ar "
        "FROM user_tier_performance_agg AS a GROUP BY ALL ORDER BY ALL",
        "SELECT toDate(session_start) AS day, user_tier, count() AS s, countIf(converted) AS c, "
        f"sum(event_count) AS e, toDecimal128(sum(revenue), 2) AS r, {DISTINCT}(user_id) AS u, "
        "round(avg(duration_s), 6) AS d, round(avg(revenue), 6) AS ar "
        "FROM user_sessions_realtime GROUP BY ALL ORDER BY ALL",
    ),
    "session_segments_mv": (
        "SELECT day, user_tier, device_type, browser, sum(a.sessions), "
        "sum(a.converted_sessions), sum(a.duration_s), sum(a.events), sum(a.revenue) "
        "FROM session_segments_agg AS a GROUP BY ALL ORDER BY ALL",
        "SELECT toDate(session_start) AS day, user_tier, device_type, browser, count(), "
        "countIf(converted), sum(duration_s), sum(event_count), toDecimal128(sum(revenue), 2) "
        "FROM user_sessions_realtime GROUP BY ALL ORDER BY ALL",
    ),
    "revenue_per_minute_mv": (
        "SELECT status, minute, sum(a.orders), sum(a.revenue) FROM revenue_per_minute_agg AS a "
        "GROUP BY ALL ORDER BY ALL",
        "SELECT status, toStartOfMinute(timestamp) AS minute, count(), "
        "toDecimal128(sum(total_amount), 2) FROM transactions_realtime GROUP BY ALL ORDER BY ALL",
    ),
    "user_events_ingestion_mv": ingestion("user_events_realtime"),
    "transactions_ingestion_mv": ingestion("transactions_realtime"),
}


def test_every_view_is_checked() -> None:
    assert set(EQUIVALENT) == {view.name for view in MATERIALIZED_VIEWS}


def rows(store: EmbeddedStore, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in store.query_rows(sql)]


@pytest.mark.parametrize("view", sorted(EQUIVALENT))
def test_view_equals_base_aggregate_before_and_after_merges(
    store: EmbeddedStore, batch: Batch, view: str
) -> None:
    # Three inserts, so the targets hold several parts until OPTIMIZE merges them.
    load(store, batch, "q:1")
    load(store, make_batch(5_000, seed=8), "q:2")
    load(store, make_batch(5_000, seed=9), "q:3")
    from_view, from_base = EQUIVALENT[view]
    expected = rows(store, from_base)
    assert expected
    assert rows(store, from_view) == expected
    target = next(v.target for v in MATERIALIZED_VIEWS if v.name == view)
    store.execute(f"OPTIMIZE TABLE {target} FINAL")
    assert rows(store, from_view) == expected


def test_replayed_batch_adds_nothing_to_tables_or_views(store: EmbeddedStore, batch: Batch) -> None:
    load(store, batch, "q:1")
    counts = {
        name: rows(store, f"SELECT count() FROM {name}")
        for name in ("user_events_realtime", "transactions_realtime", "user_sessions_realtime")
    }
    views = {name: rows(store, sql) for name, (sql, _) in EQUIVALENT.items()}
    load(store, batch, "q:1")
    load(store, batch, "q:1")
    assert counts == {name: rows(store, f"SELECT count() FROM {name}") for name in counts}
    assert views == {name: rows(store, sql) for name, (sql, _) in EQUIVALENT.items()}
    load(store, batch, "q:2")
    assert rows(store, "SELECT count() FROM user_events_realtime") == [(2 * batch.events.num_rows,)]


def test_bad_dedup_token_and_table_are_refused(store: EmbeddedStore, batch: Batch) -> None:
    with pytest.raises(ValueError, match="dedup token"):
        store.insert_arrow("user_events_realtime", batch.events, "x' OR 1=1")
    with pytest.raises(ValueError, match="table name"):
        store.insert_arrow("user_events_realtime; DROP TABLE x", batch.events, "q:1")


def test_funnel_counts_sessions_by_steps_present_in_order(store: EmbeddedStore) -> None:
    sessions = make_batch(1_000, seed=21).sessions.slice(0, 4)
    # Per session: page_views, product_views, add_to_carts, checkout_starts, purchases.
    counts = [(3, 2, 1, 1, 1), (1, 1, 1, 0, 1), (0, 4, 2, 1, 1), (2, 0, 0, 0, 0)]
    for index, step_count in enumerate(FUNNEL_STEP_COUNTS):
        column = pa.array([row[index] for row in counts], pa.uint16())
        position = sessions.column_names.index(step_count)
        sessions = sessions.set_column(position, step_count, column)
    store.insert_arrow("user_sessions_realtime", sessions, "funnel:1")
    days = sessions["session_start"].to_pylist()
    result = queries.funnel(store, min(days).date(), max(days).date())
    assert result["sessions"] == 4
    # Full funnel; stops at add_to_cart (no checkout); nothing (no page view); page view only.
    assert [step["sessions"] for step in result["steps"]] == [3, 2, 2, 1, 1]


def test_views_sharing_a_target_do_not_deduplicate_each_other(store: EmbeddedStore) -> None:
    batch = make_batch(2_000, seed=22)
    # One token for both tables: the two ingestion views still both write into ingestion_agg.
    for _ in range(2):
        store.insert_arrow("user_events_realtime", batch.events, "shared:1")
        store.insert_arrow("transactions_realtime", batch.transactions, "shared:1")
    assert rows(store, "SELECT table, sum(rows) FROM ingestion_agg GROUP BY ALL ORDER BY ALL") == [
        ("transactions_realtime", batch.transactions.num_rows),
        ("user_events_realtime", batch.events.num_rows),
    ]


def test_replay_cut_into_other_arrow_chunks_adds_nothing(store: EmbeddedStore) -> None:
    # The token names blocks by index: the insert must not cut blocks where Arrow cuts chunks.
    events = make_batch(30_000, seed=23).events.combine_chunks()
    store.insert_arrow("user_events_realtime", events, "chunks:1")
    counts = {
        table: rows(store, f"SELECT count(), count(DISTINCT _part) FROM {table}")
        for table in ("user_events_realtime", "user_activity_summary_agg", "ingestion_agg")
    }
    assert counts["user_events_realtime"][0][1] == 1
    replay = pa.Table.from_batches(events.to_batches(max_chunksize=1_000))
    store.insert_arrow("user_events_realtime", replay, "chunks:1")
    assert counts == {
        table: rows(store, f"SELECT count(), count(DISTINCT _part) FROM {table}")
        for table in counts
    }
