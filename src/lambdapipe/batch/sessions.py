"""The day's sessions: the speed layer's sessionization (30-minute gap) on every accepted event.

A session belongs to the day it started. One open at midnight is therefore the previous day's:
the events of the last gap before midnight are read too, so its events after midnight are not
taken for a new session; and one that starts on the day and crosses midnight is closed with the
next day's first events (up to the window's horizon; a session still open there is cut at the
horizon and counted in the run's summary).
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lambdapipe.batch.enrich import enrich_with_tier_as_of
from lambdapipe.batch.window import DayWindow
from lambdapipe.speed.sessionize import session_rows, sessionize


def sessions_of_day(events: DataFrame, window: DayWindow, users: DataFrame) -> DataFrame:
    """Accepted, deduplicated events of the window (curated event columns) -> the sessions that
    start on the window's day, with the user's tier as of the session's start and `cut`."""
    in_reach = events.where(
        (F.col("timestamp") >= F.lit(window.sessions_from))
        & (F.col("timestamp") < F.lit(window.sessions_until))
    ).withColumn("event_time", F.col("timestamp"))
    sessions = session_rows(sessionize(in_reach, window.gap))
    of_day = sessions.where(
        (F.col("session_start") >= F.lit(window.start))
        & (F.col("session_start") < F.lit(window.end))
    )
    cut = F.col("session_end") > F.lit(window.sessions_until - window.gap)
    return enrich_with_tier_as_of(of_day, users, at="session_start").withColumn("cut", cut)


def gap_of(seconds: int) -> timedelta:
    """The inactivity gap from settings (`speed.session_gap_s`: one rule for both layers)."""
    return timedelta(seconds=seconds)
