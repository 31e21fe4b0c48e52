"""The API's answers from the rollups equal the same questions asked of the base tables."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.serving_sample import make_batch
from lambdapipe.serving import queries
from lambdapipe.serving.ddl import DISTINCT
from lambdapipe.serving.embedded import EmbeddedStore
from tests.unit.serving.loading import load

REVENUE_FROM_BASE = """
SELECT
    dateTrunc({interval:String}, timestamp) AS bucket,
    toUInt64(count()) AS orders,
    toFloat64(sum(total_amount)) AS revenue,
    toFloat64(avg(total_amount)) AS avg_order_value
FROM transactions_realtime
WHERE status = 'completed' AND toDate(timestamp) BETWEEN {start:Date} AND {end:Date}
GROUP BY bucket
ORDER BY bucket"""

SESSIONS_FROM_BASE = """
SELECT
    {group_by:Identifier} AS segment,
    toUInt64(count()) AS sessions,
    avg(duration_s) AS avg_duration_s,
    avg(event_count) AS avg_events,
    countIf(converted) / count() AS conversion_rate,
    toFloat64(sum(revenue)) AS revenue
FROM user_sessions_realtime
WHERE toDate(session_start) BETWEEN {start:Date} AND {end:Date}
    AND ({tier:String} = '' OR user_tier = {tier:String})
    AND ({device:String} = '' OR device_type = {device:String})
GROUP BY segment
ORDER BY sessions DESC, segment"""

TOP_PRODUCTS_FROM_BASE = f"""
SELECT
    toString(assumeNotNull(product_id)) AS product_id,
    countIf(event_type = 'product_view') AS views,
    countIf(event_type = 'add_to_cart') AS add_to_carts,
    countIf(event_type = 'purchase') AS purchases,
    sumIf(ifNull(quantity, 0), event_type = 'purchase') AS units,
    toFloat64(sumIf(ifNull(amount, 0), event_type = 'purchase')) AS revenue,
    {DISTINCT.replace("(", "If(", 1)}(user_id, event_type = 'product_view') AS viewers,
    {DISTINCT.replace("(", "If(", 1)}(user_id, event_type = 'purchase') AS buyers
FROM user_events_realtime
WHERE product_id IS NOT NULL AND toDate(timestamp) BETWEEN {{start:Date}} AND {{end:Date}}
GROUP BY product_id
ORDER BY {{metric:Identifier}} DESC, product_id
LIMIT {{limit:UInt32}}"""


@pytest.fixture
def days(store: EmbeddedStore) -> dict[str, Any]:
    """Three batches over two days, in several parts of every rollup."""
    for index in range(3):
        load(store, make_batch(8_000, seed=30 + index, span_s=86_400), f"days:{index}")
    today = datetime.now(UTC).date()
    return {"start": today - timedelta(days=2), "end": today}


def same(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    def equal(a: Any, b: Any) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9)
        return bool(a == b)

    # nothing is published here: every row is the realtime layer's (merged: test_publish.py)
    layer = {"source": "realtime", "sources": ["realtime"], "watermark": None}
    return len(actual) == len(expected) and all(
        row.keys() - layer.keys() == want.keys()
        and all(equal(row[k], want[k]) for k in want)
        and all(row[k] == layer[k] for k in layer.keys() & row.keys())
        for row, want in zip(actual, expected, strict=True)
    )


@pytest.mark.parametrize("interval", ["minute", "hour", "day"])
def test_revenue_equals_base(store: EmbeddedStore, days: dict[str, Any], interval: str) -> None:
    expected = [
        {**row, "bucket": row["bucket"].isoformat()}
        for row in store.query_rows(REVENUE_FROM_BASE, {**days, "interval": interval})
    ]
    assert expected
    assert same(queries.revenue(store, days["start"], days["end"], interval), expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("group_by", ["device_type", "browser", "user_tier"])
@pytest.mark.parametrize(("tier", "device"), [("", ""), ("gold", ""), ("", "mobile")])
def test_sessions_equal_base(
    store: EmbeddedStore, days: dict[str, Any], group_by: str, tier: str, device: str
) -> None:
    params = {**days, "group_by": group_by, "tier": tier, "device": device}
    expected = store.query_rows(SESSIONS_FROM_BASE, params)
    actual = queries.sessions(store, days["start"], days["end"], group_by, tier, device)  # type: ignore[arg-type]
    assert expected
    assert same(sorted(actual, key=lambda r: (-r["sessions"], r["segment"])), expected)


@pytest.mark.parametrize("metric", ["revenue", "views", "add_to_carts", "purchases", "units"])
@pytest.mark.parametrize("limit", [1, 10, 100])
def test_top_products_equal_base(
    store: EmbeddedStore, days: dict[str, Any], metric: str, limit: int
) -> None:
    expected = store.query_rows(TOP_PRODUCTS_FROM_BASE, {**days, "metric": metric, "limit": limit})
    # no product is in the dimension here: each reads as its id (names: test_dimensions.py)
    expected = [
        {"product_id": r["product_id"], "name": r["product_id"], "category": None, **r}
        for r in expected
    ]
    actual = queries.top_products(store, days["start"], days["end"], metric, limit)  # type: ignore[arg-type]
    assert len(expected) == limit
    assert same(actual, expected)


def test_freshness_equals_base(store: EmbeddedStore, days: dict[str, Any]) -> None:
    fresh = {row["table"]: row for row in queries.freshness(store)}
    for table in ("user_events_realtime", "transactions_realtime"):
        base = store.query_rows(f"SELECT count() AS n, max(timestamp) AS newest FROM {table}")[0]
        assert fresh[table]["rows"] == base["n"]
        assert fresh[table]["newest"] == base["newest"].isoformat()
        lag = store.query_rows(
            "SELECT quantileExact(0.95)(dateDiff('millisecond', timestamp, ingested_at)) / 1000 "
            f"AS lag FROM {table}"
        )[0]["lag"]
        # DDSketch: relative accuracy 1% (all rows were ingested within the last minute).
        assert fresh[table]["ingestion_lag_p95_s"] == pytest.approx(lag, rel=0.011)
