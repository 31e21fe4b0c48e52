"""Drop records seen before (same event_id / transaction_id) within the event-time watermark.

The records query's watermark column is never below `batch_time - lateness`: dead letters carry
that floor (and a unique key, so they are never deduplicated), accepted records the later of
their event time and the floor. The watermark is never above the floor (validation rejects event
times beyond `max_future_skew` after the batch time, and the delay is `lateness + skew`), so no
row is dropped as late here; lateness itself is judged on event time on the driver
(`records.mark_late`). docs/speed.md, "Why the watermark never drops a row".
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def watermark_delay(lateness: timedelta, max_future_skew: timedelta) -> timedelta:
    """The event-time watermark delay that keeps every on-time row above the watermark."""
    return lateness + max_future_skew


def _interval(delay: timedelta) -> str:
    return f"{int(delay.total_seconds() * 1000)} milliseconds"


def deduplicate(
    classified: DataFrame, lateness: timedelta, max_future_skew: timedelta
) -> DataFrame:
    """Classified records without repeats of an accepted record's key, within the watermark."""
    floor = F.col("batch_time") - F.expr(
        f"make_dt_interval(0, 0, 0, {float(lateness.total_seconds())})"
    )
    with_time = classified.withColumn(
        "watermark_time",
        F.when(F.col("accepted"), F.greatest(F.col("event_time"), floor)).otherwise(floor),
    )
    delay = watermark_delay(lateness, max_future_skew)
    return with_time.withWatermark(
        "watermark_time", _interval(delay)
    ).dropDuplicatesWithinWatermark(["dedup_key"])


def deduplicate_events(
    events: DataFrame, lateness: timedelta, max_future_skew: timedelta
) -> DataFrame:
    """Accepted events (`event_id`, `event_time` columns) without repeats, within the watermark."""
    delay = watermark_delay(lateness, max_future_skew)
    return events.withWatermark("event_time", _interval(delay)).dropDuplicatesWithinWatermark(
        ["event_id"]
    )
