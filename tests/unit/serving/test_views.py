"""Each MV equals the same aggregate computed from its base table, before and after merges."""

from __future__ import annotations

import pytest

from lambdapipe.serving.ddl import FUNNEL_STEPS, FUNNEL_WINDOW_MS, MATERIALIZED_VIEWS
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.sample import Batch, make_batch

from .conftest import load

# (query over the MV target, the same aggregate over the base table)
EQUIVALENT = {
    "user_activity_summary_mv": (
        "SELECT minute, event_type, user_tier, device_type, sum(a.events) AS e, "
        "uniqMerge(a.users) AS u, uniqMerge(a.sessions) AS s FROM user_activity_summary_agg AS a "
        "GROUP BY ALL ORDER BY ALL",
        "SELECT toStartOfMinute(timestamp) AS minute, event_type, user_tier, device_type, "
        "count() AS e, uniq(user_id) AS u, uniq(session_id) AS s FROM user_events_realtime "
        "GROUP BY ALL ORDER BY ALL",
    ),
    "conversion_funnel_mv": (
        f"SELECT level, count() AS c FROM (SELECT session_id, "
        f"windowFunnelMerge({FUNNEL_WINDOW_MS})(funnel) AS level FROM conversion_funnel_agg "
        f"GROUP BY session_id) GROUP BY level ORDER BY level",
        f"SELECT level, count() AS c FROM (SELECT session_id, "
        f"windowFunnel({FUNNEL_WINDOW_MS})(toUInt64(toUnixTimestamp64Milli(timestamp)), "
        + ", ".join(f"event_type = '{step}'" for step in FUNNEL_STEPS)
        + ") AS level FROM user_events_realtime "
        f"WHERE event_type IN {FUNNEL_STEPS!r} GROUP BY session_id) GROUP BY level ORDER BY level",
    ),
    "product_performance_mv": (
        "SELECT day, product_id, sum(a.views) AS v, sum(a.add_to_carts) AS c, "
        "sum(a.purchases) AS p, sum(a.units) AS n, sum(a.revenue) AS r, uniqMerge(a.viewers) AS w, "
        "uniqMerge(a.buyers) AS b FROM product_performance_agg AS a GROUP BY ALL ORDER BY ALL",
        "SELECT toDate(timestamp) AS day, assumeNotNull(product_id) AS product_id, "
        "countIf(event_type = 'product_view') AS v, countIf(event_type = 'add_to_cart') AS c, "
        "countIf(event_type = 'purchase') AS p, "
        "sumIf(ifNull(quantity, 0), event_type = 'purchase') AS n, "
        "toDecimal128(sumIf(ifNull(amount, 0), event_type = 'purchase'), 2) AS r, "
        "uniqIf(user_id, event_type = 'product_view') AS w, "
        "uniqIf(user_id, event_type = 'purchase') AS b "
        "FROM user_events_realtime WHERE product_id IS NOT NULL GROUP BY ALL ORDER BY ALL",
    ),
    "user_tier_performance_mv": (
        "SELECT day, user_tier, sum(a.sessions) AS s, sum(a.converted_sessions) AS c, "
        "sum(a.events) AS e, sum(a.revenue) AS r, uniqMerge(a.users) AS u, "
        "round(avgMerge(a.avg_duration_s), 6) AS d, "
        "round(avgMerge(a.avg_session_revenue), 6) AS ar "
        "FROM user_tier_performance_agg AS a GROUP BY ALL ORDER BY ALL",
        "SELECT toDate(session_start) AS day, user_tier, count() AS s, countIf(converted) AS c, "
        "sum(event_count) AS e, toDecimal128(sum(revenue), 2) AS r, uniq(user_id) AS u, "
        "round(avg(duration_s), 6) AS d, round(avg(revenue), 6) AS ar "
        "FROM user_sessions_realtime GROUP BY ALL ORDER BY ALL",
    ),
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
