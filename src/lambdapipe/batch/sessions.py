"""The day's sessions: the speed layer's sessionization (30-minute gap) on every accepted event.

A session belongs to the day it started. One open at midnight is therefore the previous day's:
the events of the window's horizon before midnight are read too, so its events after midnight
are not taken for a new session (and carry its start, up to the horizon). One that starts on
the day and crosses midnight is closed with the next day's first events, up to the horizon; a
session still open there is cut at the horizon and counted in the run's summary.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lambdapipe.batch.enrich import enrich_with_tier_as_of
from lambdapipe.batch.window import DayWindow
from lambdapipe.speed.sessionize import session_rows, sessionize


def window_sessions(events: DataFrame, window: DayWindow) -> DataFrame:
    """Every session of the window's accepted, deduplicated events (curated event columns)."""
    in_reach = events.where(
        (F.col("timestamp") >= F.lit(window.sessions_from))
        & (F.col("timestamp") < F.lit(window.sessions_until))
    ).withColumn("event_time", F.col("timestamp"))
    return session_rows(sessionize(in_reach, window.gap))


def sessions_of_day(sessions: DataFrame, window: DayWindow, users: DataFrame) -> DataFrame:
    """The window's sessions (`window_sessions`) that start on its day, with the user's tier as
    of the session's start and `cut` (still open at the horizon)."""
    of_day = sessions.where(
        (F.col("session_start") >= F.lit(window.start))
        & (F.col("session_start") < F.lit(window.end))
    )
    cut = F.col("session_end") > F.lit(window.sessions_until - window.gap)
    return enrich_with_tier_as_of(of_day, users, at="session_start").withColumn("cut", cut)


def session_key(session_id: Column, start: Column) -> Column:
    """A batch session's key: `<session_id>/<epoch milliseconds of its first event>`."""
    return F.concat_ws("/", session_id, F.unix_millis(start).cast("string"))


def with_sessions(events: DataFrame, sessions: DataFrame) -> DataFrame:
    """`events` plus the `session_start` and `session_key` of the batch session each is in."""
    spans = sessions.select(
        F.col("session_id").alias("_sid"),
        F.col("session_start"),
        F.col("session_end").alias("_end"),
    )
    inside = (
        (F.col("session_id") == F.col("_sid"))
        & (F.col("timestamp") >= F.col("session_start"))
        & (F.col("timestamp") <= F.col("_end"))
    )
    labelled = events.join(spans, inside, "left").drop("_sid", "_end")
    return labelled.withColumn(
        "session_key", session_key(F.col("session_id"), F.col("session_start"))
    )
