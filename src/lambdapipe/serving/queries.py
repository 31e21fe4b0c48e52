"""The dashboard's and the API's questions, as ClickHouse SQL with bound parameters only.

Every value reaches ClickHouse as a `{name:Type}` query parameter (sort columns as
`{name:Identifier}`); no user text is ever formatted into SQL. Each function takes a store and
returns plain rows or dicts ready for JSON.

Each question reads one rollup merged from both layers in one statement (`_rows_of`): the
batch twin's rows for the published days (first published day .. the batch watermark, read in
the same statement from `batch_publications`) and the realtime rollup's rows for every other
day; `source` = `realtime` or `batch` reads one layer alone. Every answer carries the watermark
it used and which layer each bucket (or each row's days) came from.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final, Literal

from lambdapipe.serving.ddl import (
    BATCH_TWINS,
    DISTINCT,
    FUNNEL_STEPS,
    LAG_ACCURACY,
    PUBLICATIONS,
    WATERMARK_SQL,
)
from lambdapipe.serving.dimensions import PRODUCT_NAMES
from lambdapipe.serving.store import ServingStore

Source = Literal["merged", "realtime", "batch"]
ProductMetric = Literal["revenue", "views", "add_to_carts", "purchases", "units"]
SessionGrouping = Literal["device_type", "browser", "user_tier"]
Interval = Literal["minute", "hour", "day"]

# '' means "all" for the optional filters, so one SQL text serves both cases.
_FILTERS: Final = """({tier:String} = '' OR user_tier = {tier:String})
    AND ({device:String} = '' OR device_type = {device:String})"""

# The -Merge of the rollups' distinct-count states, e.g. uniqCombinedMerge(14).
_MERGE: Final = DISTINCT.replace("(", "Merge(", 1)

# The published days, read once per statement: batch_from .. batch_to (the watermark); an
# empty range (1970-01-02 .. 1970-01-01) when nothing is published.
_BOUNDS: Final = f"""
    (SELECT ifNull(minOrNull(day), toDate(1)) FROM {PUBLICATIONS}) AS batch_from,
    {WATERMARK_SQL} AS batch_to"""  # noqa: S608
_WATERMARK: Final = "nullIf(batch_to, toDate(0)) AS watermark"
_TWINS: Final = {twin.realtime: twin for twin in BATCH_TWINS}


def _rows_of(rollup: str, where: str) -> str:
    """The rows of `rollup` an answer reads, with a `source` column: for `{source:String}` =
    merged the batch twin's on published days and the rollup's on the others, else one layer's.
    `where` (bound parameters only) is applied to both, so both keep their primary index."""
    twin = _TWINS[rollup]
    published = f"{twin.day} BETWEEN batch_from AND batch_to"
    return f"""(
    SELECT 'batch' AS source, * FROM {twin.name}
    WHERE {published} AND {{source:String}} != 'realtime' AND {where}
    UNION ALL
    SELECT 'realtime' AS source, * FROM {rollup}
    WHERE ({{source:String}} = 'realtime' OR ({{source:String}} = 'merged' AND NOT {published}))
        AND {where}
)"""  # noqa: S608


def watermark(store: ServingStore) -> date | None:
    """The batch watermark: the last day published complete, None before any publication."""
    row = store.query_rows(f"SELECT nullIf({WATERMARK_SQL}, toDate(0)) AS watermark")[0]
    value: date | None = row["watermark"]
    return value


def _day_text(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _answer_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "watermark": _day_text(row["watermark"])} for row in rows]


_REACHED: Final = ",\n    ".join(f"sum(reached_{step}) AS reached_{step}" for step in FUNNEL_STEPS)
_DAYS: Final = "day BETWEEN {start:Date} AND {end:Date}"
FUNNEL_SQL: Final = f"""
WITH {_BOUNDS}
SELECT
    sum(sessions) AS sessions,
    {_REACHED},
    arraySort(groupUniqArray(source)) AS sources,
    {_WATERMARK}
FROM {_rows_of("conversion_funnel_agg", f"{_DAYS} AND {_FILTERS}")}"""  # noqa: S608


def funnel(
    store: ServingStore,
    start: date,
    end: date,
    tier: str = "",
    device: str = "",
    source: Source = "merged",
) -> dict[str, Any]:
    """Closed sessions reaching each funnel step, with step and overall conversion rates.

    A session reaches step k when it has events of every step 1..k (see docs/serving.md).
    """
    row = store.query_rows(
        FUNNEL_SQL,
        {"start": start, "end": end, "tier": tier, "device": device, "source": source},
    )[0]
    steps = []
    previous = first = 0
    for step in FUNNEL_STEPS:
        reached = int(row[f"reached_{step}"])
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
    return {
        "sessions": int(row["sessions"]),
        "steps": steps,
        "source": source,
        "sources": row["sources"],
        "watermark": _day_text(row["watermark"]),
    }


TIERS_SQL: Final = f"""
WITH {_BOUNDS}
SELECT
    user_tier,
    sum(a.sessions) AS sessions,
    sum(a.converted_sessions) AS converted_sessions,
    sum(a.converted_sessions) / greatest(sum(a.sessions), 1) AS conversion_rate,
    sum(a.events) AS events,
    sum(a.purchases) AS purchases,
    toFloat64(sum(a.revenue)) AS revenue,
    {_MERGE}(a.users) AS users,
    avgMerge(a.avg_duration_s) AS avg_duration_s,
    toFloat64(avgMerge(a.avg_session_revenue)) AS avg_session_revenue,
    arraySort(groupUniqArray(a.source)) AS sources,
    {_WATERMARK}
FROM {_rows_of("user_tier_performance_agg", _DAYS)} AS a
GROUP BY user_tier
ORDER BY revenue DESC"""  # noqa: S608


def tier_performance(
    store: ServingStore, start: date, end: date, source: Source = "merged"
) -> list[dict[str, Any]]:
    """Per enriched tier: sessions, conversion, revenue, users, average duration."""
    return _answer_rows(store.query_rows(TIERS_SQL, {"start": start, "end": end, "source": source}))


# Rank on one sum (read from the rollups' day-first projection), then merge the distinct-count
# states of the top rows only (product-first granules). Names and categories come from the
# dimension, FINAL, all of it: filtering it by the top rows' keys ranked a second time (~2x);
# unknown: the id, no category.
_PRODUCT_ROWS: Final = _rows_of("product_performance_agg", _DAYS)
TOP_PRODUCTS_SQL: Final = f"""
WITH {_BOUNDS},
top AS (
    SELECT product_id
    FROM {_PRODUCT_ROWS}
    GROUP BY product_id
    ORDER BY sum({{metric:Identifier}}) DESC, toString(product_id)
    LIMIT {{limit:UInt32}}
)
SELECT
    toString(a.product_id) AS product_id,
    if(max(d.known), any(d.name), product_id) AS name,
    if(max(d.known), any(d.category), NULL) AS category,
    sum(a.views) AS views,
    sum(a.add_to_carts) AS add_to_carts,
    sum(a.purchases) AS purchases,
    sum(a.units) AS units,
    toFloat64(sum(a.revenue)) AS revenue,
    {_MERGE}(a.viewers) AS viewers,
    {_MERGE}(a.buyers) AS buyers,
    arraySort(groupUniqArray(a.source)) AS sources,
    {_WATERMARK}
FROM {_PRODUCT_ROWS} AS a
LEFT JOIN {PRODUCT_NAMES} AS d ON d.product_id = a.product_id
WHERE a.product_id IN top
GROUP BY a.product_id
ORDER BY {{metric:Identifier}} DESC, product_id"""  # noqa: S608


def top_products(
    store: ServingStore,
    start: date,
    end: date,
    metric: ProductMetric,
    limit: int,
    source: Source = "merged",
) -> list[dict[str, Any]]:
    """The `limit` products with the highest `metric` over the days, with their names."""
    params = {"start": start, "end": end, "metric": metric, "limit": limit, "source": source}
    return _answer_rows(store.query_rows(TOP_PRODUCTS_SQL, params))


SESSIONS_SQL: Final = f"""
WITH {_BOUNDS}
SELECT
    {{group_by:Identifier}} AS segment,
    sum(a.sessions) AS sessions,
    sum(a.duration_s) / sessions AS avg_duration_s,
    sum(a.events) / sessions AS avg_events,
    sum(a.converted_sessions) / sessions AS conversion_rate,
    toFloat64(sum(a.revenue)) AS revenue,
    arraySort(groupUniqArray(a.source)) AS sources,
    {_WATERMARK}
FROM {_rows_of("session_segments_agg", f"{_DAYS} AND {_FILTERS}")} AS a
GROUP BY segment
ORDER BY sessions DESC"""  # noqa: S608


def sessions(
    store: ServingStore,
    start: date,
    end: date,
    group_by: SessionGrouping,
    tier: str = "",
    device: str = "",
    source: Source = "merged",
) -> list[dict[str, Any]]:
    """Session counts, duration, depth and conversion per device, browser or tier."""
    params = {"start": start, "end": end, "group_by": group_by, "tier": tier, "device": device}
    return _answer_rows(store.query_rows(SESSIONS_SQL, {**params, "source": source}))


_COMPLETED: Final = "status = 'completed' AND toDate(minute) BETWEEN {start:Date} AND {end:Date}"
# A bucket is one layer's (minute, hour and day buckets never cross midnight): any(source).
REVENUE_SQL: Final = f"""
WITH {_BOUNDS}
SELECT
    toDateTime64(dateTrunc({{interval:String}}, minute), 3, 'UTC') AS bucket,
    sum(a.orders) AS orders,
    toFloat64(sum(a.revenue)) AS revenue,
    revenue / orders AS avg_order_value,
    any(a.source) AS source,
    {_WATERMARK}
FROM {_rows_of("revenue_per_minute_agg", _COMPLETED)} AS a
GROUP BY bucket
ORDER BY bucket"""  # noqa: S608


def revenue(
    store: ServingStore, start: date, end: date, interval: Interval, source: Source = "merged"
) -> list[dict[str, Any]]:
    """Completed orders and revenue per minute, hour or day."""
    params = {"start": start, "end": end, "interval": interval, "source": source}
    rows = _answer_rows(store.query_rows(REVENUE_SQL, params))
    return [{**row, "bucket": row["bucket"].isoformat()} for row in rows]


_REALTIME_TABLES: Final = ("transactions_realtime", "user_events_realtime")
# count() and max(timestamp) are answered from part metadata (the implicit minmax_count
# projection of the toYYYYMM(timestamp) partition key): no rows are read.
_NEWEST_OF_TABLE: Final = """
SELECT
    '{table}' AS table,
    count() AS rows,
    max(timestamp) AS newest,
    dateDiff('millisecond', newest, now64(3)) / 1000 AS freshness_s
FROM {table}"""
NEWEST_SQL: Final = "\nUNION ALL\n".join(
    _NEWEST_OF_TABLE.format(table=table) for table in _REALTIME_TABLES
)
# The lag sketch of the rows ingested in the last 60 s (to the second), per table.
INGESTION_LAG_SQL: Final = f"""
SELECT
    table,
    quantileDDMerge({LAG_ACCURACY}, 0.95)(a.lag_ms) / 1000 AS ingestion_lag_p95_s
FROM ingestion_agg AS a
WHERE second > now() - INTERVAL 1 MINUTE
GROUP BY table"""  # noqa: S608


def freshness(store: ServingStore) -> list[dict[str, Any]]:
    """Per table: newest event time, now minus it, and the p95 ingestion lag of the last minute."""
    lags = {row["table"]: row["ingestion_lag_p95_s"] for row in store.query_rows(INGESTION_LAG_SQL)}
    rows = store.query_rows(NEWEST_SQL)
    for row in rows:
        row["ingestion_lag_p95_s"] = lags.get(row["table"])
        if row["rows"] == 0:
            row.update(newest=None, freshness_s=None, ingestion_lag_p95_s=None)
        else:
            row["newest"] = row["newest"].isoformat()
    return sorted(rows, key=lambda row: str(row["table"]))


# Accepted events from the ingestion rollup (whole seconds); dead letters are few: base table.
ACTIVITY_SQL: Final = """
SELECT
    (SELECT sum(a.rows) FROM ingestion_agg AS a
     WHERE a.table = 'user_events_realtime'
       AND a.second > now() - toIntervalSecond({window_s:UInt32})) AS accepted,
    (SELECT count() FROM dead_letters_realtime
     WHERE ingested_at > now64(3) - toIntervalSecond({window_s:UInt32})) AS dead_lettered"""

# `a.minute`, not `minute`: the output alias would hide the key column from the index.
PER_MINUTE_SQL: Final = f"""
WITH {_BOUNDS}
SELECT
    toDateTime64(a.minute, 0, 'UTC') AS minute,
    sum(a.events) AS events,
    {_MERGE}(a.users) AS users,
    any(a.source) AS source
FROM {_rows_of("user_activity_summary_agg", "minute > now() - toIntervalMinute({minutes:UInt32})")}
    AS a
GROUP BY a.minute
ORDER BY minute"""  # noqa: S608


def activity(
    store: ServingStore, window_s: int, minutes: int, source: Source = "merged"
) -> dict[str, Any]:
    """Events/s and dead-letter rate over the last `window_s` (the realtime layer's ingestion),
    events per minute before (merged like every rollup)."""
    counts = store.query_rows(ACTIVITY_SQL, {"window_s": window_s})[0]
    accepted, dead = int(counts["accepted"]), int(counts["dead_lettered"])
    per_minute = store.query_rows(PER_MINUTE_SQL, {"minutes": minutes, "source": source})
    return {
        "window_s": window_s,
        "events_per_s": accepted / window_s,
        "dead_letters_per_s": dead / window_s,
        "dead_letter_rate": dead / (accepted + dead) if accepted + dead else 0.0,
        "source": source,
        "watermark": _day_text(watermark(store)),
        "per_minute": [{**row, "minute": row["minute"].isoformat()} for row in per_minute],
    }
