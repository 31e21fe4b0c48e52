"""The dashboard's and the API's questions, as ClickHouse SQL with bound parameters only.

Every value reaches ClickHouse as a `{name:Type}` query parameter (sort columns as
`{name:Identifier}`); no user text is ever formatted into SQL. Each function takes a store and
returns plain rows or dicts ready for JSON.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final, Literal

from lambdapipe.serving.ddl import FUNNEL_STEPS, FUNNEL_WINDOW_MS
from lambdapipe.serving.store import ServingStore

ProductMetric = Literal["revenue", "views", "add_to_carts", "purchases", "units"]
SessionGrouping = Literal["device_type", "browser", "user_tier"]
Interval = Literal["minute", "hour", "day"]

# '' means "all" for the optional filters, so one SQL text serves both cases.
_FILTERS: Final = """({tier:String} = '' OR user_tier = {tier:String})
    AND ({device:String} = '' OR device_type = {device:String})"""

FUNNEL_SQL: Final = f"""
SELECT level, toUInt64(count()) AS sessions
FROM (
    SELECT session_id, windowFunnelMerge({FUNNEL_WINDOW_MS})(funnel) AS level
    FROM conversion_funnel_agg
    WHERE day BETWEEN {{start:Date}} AND {{end:Date}} AND {_FILTERS}
    GROUP BY session_id
)
GROUP BY level
ORDER BY level"""


def funnel(
    store: ServingStore, start: date, end: date, tier: str = "", device: str = ""
) -> dict[str, Any]:
    """Sessions reaching each funnel step in order, with step and overall conversion rates."""
    per_level = {
        int(row["level"]): int(row["sessions"])
        for row in store.query_rows(
            FUNNEL_SQL, {"start": start, "end": end, "tier": tier, "device": device}
        )
    }
    steps = []
    previous = first = 0
    for index, step in enumerate(FUNNEL_STEPS, start=1):
        reached = sum(count for level, count in per_level.items() if level >= index)
        first = first or reached
        steps.append(
            {
                "step": step,
                "sessions": reached,
                "step_rate": reached / previous if previous else (1.0 if reached else 0.0),
                "overall_rate": reached / first if first else 0.0,
            }
        )
        previous = reached
    return {"sessions": sum(per_level.values()), "steps": steps}


TIERS_SQL: Final = """
SELECT
    user_tier,
    sum(a.sessions) AS sessions,
    sum(a.converted_sessions) AS converted_sessions,
    sum(a.converted_sessions) / greatest(sum(a.sessions), 1) AS conversion_rate,
    sum(a.events) AS events,
    sum(a.purchases) AS purchases,
    toFloat64(sum(a.revenue)) AS revenue,
    uniqMerge(a.users) AS users,
    avgMerge(a.avg_duration_s) AS avg_duration_s,
    toFloat64(avgMerge(a.avg_session_revenue)) AS avg_session_revenue
FROM user_tier_performance_agg AS a
WHERE day BETWEEN {start:Date} AND {end:Date}
GROUP BY user_tier
ORDER BY revenue DESC"""


def tier_performance(store: ServingStore, start: date, end: date) -> list[dict[str, Any]]:
    """Per enriched tier: sessions, conversion, revenue, users, average duration."""
    return store.query_rows(TIERS_SQL, {"start": start, "end": end})


TOP_PRODUCTS_SQL: Final = """
SELECT
    toString(product_id) AS product_id,
    sum(a.views) AS views,
    sum(a.add_to_carts) AS add_to_carts,
    sum(a.purchases) AS purchases,
    sum(a.units) AS units,
    toFloat64(sum(a.revenue)) AS revenue,
    uniqMerge(a.viewers) AS viewers,
    uniqMerge(a.buyers) AS buyers
FROM product_performance_agg AS a
WHERE day BETWEEN {start:Date} AND {end:Date}
GROUP BY product_id
ORDER BY {metric:Identifier} DESC, product_id
LIMIT {limit:UInt32}"""


def top_products(
    store: ServingStore, start: date, end: date, metric: ProductMetric, limit: int
) -> list[dict[str, Any]]:
    """The `limit` products with the highest `metric` over the days."""
    return store.query_rows(
        TOP_PRODUCTS_SQL, {"start": start, "end": end, "metric": metric, "limit": limit}
    )


SESSIONS_SQL: Final = f"""
SELECT
    {{group_by:Identifier}} AS segment,
    toUInt64(count()) AS sessions,
    avg(duration_s) AS avg_duration_s,
    avg(event_count) AS avg_events,
    countIf(converted) / count() AS conversion_rate,
    toFloat64(sum(revenue)) AS revenue
FROM user_sessions_realtime
WHERE toDate(session_start) BETWEEN {{start:Date}} AND {{end:Date}} AND {_FILTERS}
GROUP BY segment
ORDER BY sessions DESC"""


def sessions(
    store: ServingStore,
    start: date,
    end: date,
    group_by: SessionGrouping,
    tier: str = "",
    device: str = "",
) -> list[dict[str, Any]]:
    """Session counts, duration, depth and conversion per device, browser or tier."""
    return store.query_rows(
        SESSIONS_SQL,
        {"start": start, "end": end, "group_by": group_by, "tier": tier, "device": device},
    )


REVENUE_SQL: Final = """
SELECT
    dateTrunc({interval:String}, timestamp) AS bucket,
    toUInt64(count()) AS orders,
    toFloat64(sum(total_amount)) AS revenue,
    toFloat64(avg(total_amount)) AS avg_order_value
FROM transactions_realtime
WHERE status = 'completed' AND toDate(timestamp) BETWEEN {start:Date} AND {end:Date}
GROUP BY bucket
ORDER BY bucket"""


def revenue(
    store: ServingStore, start: date, end: date, interval: Interval
) -> list[dict[str, Any]]:
    """Completed orders and revenue per minute, hour or day."""
    rows = store.query_rows(REVENUE_SQL, {"start": start, "end": end, "interval": interval})
    return [{**row, "bucket": row["bucket"].isoformat()} for row in rows]


_FRESHNESS_OF_TABLE: Final = """
SELECT
    '{table}' AS table,
    count() AS rows,
    max(timestamp) AS newest,
    dateDiff('millisecond', max(timestamp), now64(3)) / 1000 AS freshness_s,
    if(
        countIf(ingested_at > now64(3) - INTERVAL 1 MINUTE) = 0,
        NULL,
        quantileExactIf(0.95)(
            dateDiff('millisecond', timestamp, ingested_at),
            ingested_at > now64(3) - INTERVAL 1 MINUTE
        ) / 1000
    ) AS ingestion_lag_p95_s
FROM {table}"""
FRESHNESS_SQL: Final = "\nUNION ALL\n".join(
    _FRESHNESS_OF_TABLE.format(table=table)
    for table in ("user_events_realtime", "transactions_realtime")
)


def freshness(store: ServingStore) -> list[dict[str, Any]]:
    """Per table: newest event time, now minus it, and the p95 ingestion lag of the last minute."""
    rows = store.query_rows(FRESHNESS_SQL)
    for row in rows:
        if row["rows"] == 0:
            row.update(newest=None, freshness_s=None, ingestion_lag_p95_s=None)
        else:
            row["newest"] = row["newest"].isoformat()
    return sorted(rows, key=lambda row: str(row["table"]))


ACTIVITY_SQL: Final = """
SELECT
    (SELECT count() FROM user_events_realtime
     WHERE ingested_at > now64(3) - toIntervalSecond({window_s:UInt32})) AS accepted,
    (SELECT count() FROM dead_letters_realtime
     WHERE ingested_at > now64(3) - toIntervalSecond({window_s:UInt32})) AS dead_lettered"""

PER_MINUTE_SQL: Final = """
SELECT
    toDateTime64(minute, 0, 'UTC') AS minute, sum(a.events) AS events, uniqMerge(a.users) AS users
FROM user_activity_summary_agg AS a
WHERE minute > now() - toIntervalMinute({minutes:UInt32})
GROUP BY a.minute
ORDER BY minute"""


def activity(store: ServingStore, window_s: int, minutes: int) -> dict[str, Any]:
    """Events/s and dead-letter rate over the last `window_s`, events per minute before."""
    counts = store.query_rows(ACTIVITY_SQL, {"window_s": window_s})[0]
    accepted, dead = int(counts["accepted"]), int(counts["dead_lettered"])
    per_minute = store.query_rows(PER_MINUTE_SQL, {"minutes": minutes})
    return {
        "window_s": window_s,
        "events_per_s": accepted / window_s,
        "dead_letters_per_s": dead / window_s,
        "dead_letter_rate": dead / (accepted + dead) if accepted + dead else 0.0,
        "per_minute": [{**row, "minute": row["minute"].isoformat()} for row in per_minute],
    }
