"""Which raw records one day's run reads, and the day each record belongs to.

A record belongs to the day of its event time, whenever it arrived; a record without a readable
event time, or with one in the future of its arrival (beyond the validator's skew), belongs to
the day it arrived (its Kafka timestamp). Every record thus has exactly one day, and the days'
conservation adds up to the lake's.

Day D reads the Kafka-timestamp partitions D - 1 (events up to the skew ahead of the clock)
through D + 1 + lookback (late arrivals), plus the accepted events of the neighbouring days that
sessions need: those of the last `horizon` before midnight (a session that was open at
midnight belongs to the day before), and those of the next day's first `horizon` (to close the
sessions that start on D and cross midnight).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DEFAULT_LOOKBACK_DAYS = 2
DEFAULT_HORIZON = timedelta(hours=6)


@dataclass(frozen=True)
class DayWindow:
    """Day `day`'s reading window."""

    day: date
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    gap: timedelta = timedelta(minutes=30)
    horizon: timedelta = DEFAULT_HORIZON
    skew: timedelta = timedelta(minutes=5)

    @property
    def start(self) -> datetime:
        """Midnight (UTC) that opens the day."""
        return datetime.combine(self.day, time(), UTC)

    @property
    def end(self) -> datetime:
        """Midnight (UTC) that closes the day."""
        return self.start + timedelta(days=1)

    @property
    def first_kafka_day(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def last_kafka_day(self) -> date:
        return self.day + timedelta(days=1 + self.lookback_days)

    @property
    def sessions_from(self) -> datetime:
        """The earliest event time sessions read: the horizon before midnight (at least a gap:
        enough to see that a session was open at midnight; more labels its events exactly)."""
        return self.start - max(self.horizon, self.gap)

    @property
    def sessions_until(self) -> datetime:
        """Sessions read events up to here; one still open here is cut (and counted)."""
        return self.end + self.horizon


def record_day(skew: timedelta) -> Column:
    """The day a raw record belongs to (see the module's docstring)."""
    ahead = F.col("kafka_timestamp") + F.expr(
        f"make_dt_interval(0, 0, 0, {float(skew.total_seconds())})"
    )
    has_time = F.col("event_time").isNotNull() & (F.col("event_time") <= ahead)
    return F.when(has_time, F.to_date("event_time")).otherwise(F.col("kafka_date"))


def records_in_window(raw: DataFrame, window: DayWindow) -> DataFrame:
    """Raw rows (lake columns) that day `window.day` reads, with `record_day` and `in_day`."""
    arrived = F.col("kafka_date").between(
        F.lit(window.first_kafka_day), F.lit(window.last_kafka_day)
    )
    near = (F.col("event_time") >= F.lit(window.sessions_from)) & (
        F.col("event_time") < F.lit(window.sessions_until)
    )
    with_day = raw.where(arrived).withColumn("record_day", record_day(window.skew))
    return with_day.where((F.col("record_day") == F.lit(window.day)) | near).withColumn(
        "in_day", F.col("record_day") == F.lit(window.day)
    )
