"""Sessions: a session_id's events until 30 idle minutes, with Spark's native `session_window`.

Sessions are keyed by the client's session_id (a user has one open session at a time) and cut
by the inactivity gap on event time; each is emitted once, when the watermark closes it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# (event_type, column of user_sessions_realtime)
EVENT_COUNTS: Final = (
    ("page_view", "page_views"),
    ("product_view", "product_views"),
    ("search", "searches"),
    ("add_to_cart", "add_to_carts"),
    ("remove_from_cart", "remove_from_carts"),
    ("checkout_start", "checkout_starts"),
    ("purchase", "purchases"),
    ("login", "logins"),
    ("logout", "logouts"),
)


def _count_of(event_type: str) -> Column:
    return F.sum(F.when(F.col("event_type") == event_type, 1).otherwise(0))


def sessionize(events: DataFrame, gap: timedelta) -> DataFrame:
    """Per session: start, end (last event), counts per type, revenue, items, device, browser.

    `events` are accepted, deduplicated `user_events_realtime` rows with `event_time`.
    """
    is_purchase = F.col("event_type") == "purchase"
    window = F.session_window("event_time", f"{int(gap.total_seconds() * 1000)} milliseconds")
    return events.groupBy(window.alias("window"), F.col("session_id")).agg(
        F.min("user_id").alias("user_id"),
        F.min("event_time").alias("session_start"),
        F.max("event_time").alias("session_end"),
        F.count(F.lit(1)).alias("event_count"),
        *[_count_of(kind).alias(name) for kind, name in EVENT_COUNTS],
        F.sum(F.when(is_purchase, F.col("amount"))).alias("revenue"),
        F.sum(F.when(is_purchase, F.col("quantity"))).alias("items"),
        F.min("device_type").alias("device_type"),
        F.min("browser").alias("browser"),
    )


def session_rows(sessions: DataFrame) -> DataFrame:
    """`user_sessions_realtime` columns (without `user_tier`) from `sessionize` output."""
    duration = F.floor(
        (F.unix_millis(F.col("session_end")) - F.unix_millis(F.col("session_start"))) / 1000
    )
    return sessions.select(
        "session_id",
        "user_id",
        "session_start",
        "session_end",
        duration.cast("long").alias("duration_s"),
        "event_count",
        *[name for _, name in EVENT_COUNTS],
        F.coalesce(F.col("revenue"), F.lit(0).cast("decimal(10,2)"))
        .cast("decimal(10,2)")
        .alias("revenue"),
        F.coalesce(F.col("items"), F.lit(0)).cast("long").alias("items"),
        "device_type",
        "browser",
        (F.col("purchases") > 0).alias("converted"),
    )
