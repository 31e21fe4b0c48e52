"""One day's whole computation as DataFrames, before anything is written (pure, no I/O)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lambdapipe.batch.classify import classify_raw
from lambdapipe.batch.deduplicate import mark_repeats
from lambdapipe.batch.rows import (
    curated_dead_letters,
    curated_events,
    curated_transactions,
    window_events,
)
from lambdapipe.batch.sessions import sessions_of_day, window_sessions, with_sessions
from lambdapipe.batch.window import DayWindow, records_in_window
from lambdapipe.contracts.validate import Limits


@dataclass(frozen=True)
class Topics:
    events: str
    transactions: str


@dataclass
class Tally:
    """The day's raw records by verdict: what each curated table must hold."""

    raw_records: int = 0
    events: int = 0
    transactions: int = 0
    duplicates: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def dead_letters_total(self) -> int:
        return sum(self.dead_letters.values())


def classified_window(raw: DataFrame, window: DayWindow, topics: Topics) -> DataFrame:
    """The window's raw rows (raw.events and raw.transactions) with verdicts and `is_repeat`."""
    return mark_repeats(
        classify_raw(
            records_in_window(raw, window),
            events_topic=topics.events,
            transactions_topic=topics.transactions,
            limits=Limits(max_future_skew=window.skew),
        )
    )


def tally(classified: DataFrame, topics: Topics) -> Tally:
    """Count the day's records (`in_day`) by topic, verdict and repeat."""
    groups = (
        classified.where("in_day")
        .groupBy("topic", "accepted", "is_repeat", "reason")
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    )
    result, reasons = Tally(), Counter[str]()
    for row in groups:
        n = int(row["n"])
        result.raw_records += n
        if not row["accepted"]:
            reasons[str(row["reason"])] += n
        elif row["is_repeat"]:
            result.duplicates += n
        elif row["topic"] == topics.events:
            result.events += n
        else:
            result.transactions += n
    result.dead_letters = dict(sorted(reasons.items()))
    return result


@dataclass(frozen=True)
class DayOutputs:
    """The rows of each curated table for one day."""

    events: DataFrame
    transactions: DataFrame
    dead_letters: DataFrame
    sessions: DataFrame  # with `cut`: still open at the window's horizon


def day_outputs(
    classified: DataFrame,
    window: DayWindow,
    topics: Topics,
    users: DataFrame,
    products: DataFrame,
    window_rows: DataFrame | None = None,
    sessions: DataFrame | None = None,
) -> DayOutputs:
    """Every curated row of `window.day` from the classified window (`classified_window`);
    `window_rows` (`window_events`) and `sessions` (`window_sessions`) when the caller keeps
    them cached."""
    events = window_rows if window_rows is not None else window_events(classified, topics.events)
    spans = sessions if sessions is not None else window_sessions(events, window)
    return DayOutputs(
        events=with_sessions(curated_events(events, users, products), spans),
        transactions=curated_transactions(classified, topics.transactions, users, products),
        dead_letters=curated_dead_letters(classified),
        sessions=sessions_of_day(spans, window, users),
    )
