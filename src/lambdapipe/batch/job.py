"""`lambdapipe batch run`: each day recomputed from the raw tables into the curated tables.

The thin edge around the pure transforms: read the lake, classify, deduplicate, enrich,
sessionize, write each day's partitions, read back what was written and check conservation
(the day's raw records = curated events + curated transactions + dead letters + repeats).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from lambdapipe.batch import tables
from lambdapipe.batch.day import Topics, classified_window, day_outputs, tally
from lambdapipe.batch.history import products_history, users_history
from lambdapipe.batch.rows import window_events
from lambdapipe.batch.sessions import window_sessions
from lambdapipe.batch.window import (
    DEFAULT_HORIZON,
    DEFAULT_LOOKBACK_DAYS,
    DayWindow,
)
from lambdapipe.errors import Problem
from lambdapipe.lake.tables import RAW_COLUMNS
from lambdapipe.lake.tables import qualified as raw_name
from lambdapipe.settings import Settings

if TYPE_CHECKING:
    from lambdapipe.warehouse.transform import DbtRun

log = logging.getLogger(__name__)
BATCH_SHUFFLE_PARTITIONS = 16


@dataclass
class DaySummary:
    """What one day's run read, wrote and dropped."""

    day: date
    raw_records: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    sessions_cut: int = 0
    seconds: float = 0.0

    @property
    def accounted(self) -> int:
        """Curated events + transactions + dead letters + dropped repeats."""
        r = self.rows
        return r["events"] + r["transactions"] + r["dead_letters"] + self.duplicates

    @property
    def conserved(self) -> bool:
        return self.accounted == self.raw_records


@dataclass
class BatchRun:
    """Every day of one `batch run`, the users history it rebuilt, and the warehouse step."""

    days: list[DaySummary] = field(default_factory=list)
    users_history_rows: int = 0
    batch_id: str = ""
    # day -> RAW table -> rows loaded
    raw_loaded: dict[date, dict[str, int]] = field(default_factory=dict)
    dbt: DbtRun | None = None
    # phase -> wall seconds: histories, curated (every day), raw_load, dbt
    phases: dict[str, float] = field(default_factory=dict)


Progress = Callable[[str], None]


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    if last < first:
        raise Problem(f"--to {last} is before --from {first}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class BatchJob:
    """The batch layer's run over the lake, one day at a time."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        lookback_days: int = DEFAULT_LOOKBACK_DAYS,
        horizon: timedelta = DEFAULT_HORIZON,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.lookback_days = lookback_days
        self.horizon = horizon
        speed = settings.speed
        self.skew = timedelta(seconds=speed.max_future_skew_s)
        self.gap = timedelta(seconds=speed.session_gap_s)

    def _raw(self, name: str, required: bool) -> DataFrame:
        table = raw_name(self.settings, name)
        if self.spark.catalog.tableExists(table):
            return self.spark.table(table)
        if required:
            raise Problem(
                f"the lake has no table {table}",
                hint="archive Kafka into the lake first: `lambdapipe lake archive --until-idle 10`",
            )
        schema = ", ".join(f"`{n}` {t}" for n, t, _ in RAW_COLUMNS)
        return self.spark.createDataFrame([], schema)

    def window(self, day: date) -> DayWindow:
        return DayWindow(day, self.lookback_days, self.gap, self.horizon, self.skew)

    def run(self, days: Iterable[date], progress: Progress = lambda line: None) -> BatchRun:
        """Rebuild the histories, then each day in order."""
        result = BatchRun(batch_id=datetime.now(UTC).strftime("batch-%Y%m%dT%H%M%SZ"))
        started = time.monotonic()
        progress("users and products history")
        users = users_history(self._raw("users_changes", False)).persist()
        products = products_history(self._raw("products_changes", False)).persist()
        tables.replace_all(self.spark, self.settings, tables.USERS_HISTORY, users)
        result.users_history_rows = users.count()
        result.phases["histories"] = time.monotonic() - started
        raw = self._raw("events", True).unionByName(self._raw("transactions", True))
        for day in days:
            result.days.append(self.run_day(raw, day, users, products, progress))
        result.phases["curated"] = sum(d.seconds for d in result.days)
        users.unpersist()
        products.unpersist()
        return result

    def load_warehouse(self, result: BatchRun, progress: Progress = lambda line: None) -> None:
        """Replace each day of the run in the warehouse's RAW tables, then build with dbt."""
        from lambdapipe.batch.load import load_day
        from lambdapipe.resources import Resources
        from lambdapipe.warehouse.transform import build

        started = time.monotonic()
        changes = self._raw("products_changes", False)
        with Resources(self.settings).warehouse() as warehouse:
            for summary in result.days:
                progress(f"{summary.day}: loading the warehouse's RAW tables")
                result.raw_loaded[summary.day] = load_day(
                    self.settings, warehouse, summary.day, result.batch_id, changes
                )
        result.phases["raw_load"] = time.monotonic() - started
        started = time.monotonic()
        progress("dbt build: staging, marts and their tests")
        result.dbt = build(self.settings)
        result.phases["dbt"] = time.monotonic() - started

    def run_day(
        self,
        raw: DataFrame,
        day: date,
        users: DataFrame,
        products: DataFrame,
        progress: Progress = lambda line: None,
    ) -> DaySummary:
        """Recompute `day` and replace its partitions in the curated tables."""
        started = time.monotonic()
        window = self.window(day)
        topics = Topics(self.settings.kafka.events_topic, self.settings.kafka.transactions_topic)
        progress(f"{day}: validating and deduplicating")
        # the wide rows (raw bytes, parsed structs) of millions of records: built in memory, the
        # columnar cache ran the heap out (4g, 10M records); on disk it is built batch by batch
        classified = classified_window(raw, window, topics).persist(StorageLevel.DISK_ONLY)
        try:
            counted = tally(classified, topics)
            events = window_events(classified, topics.events).persist(StorageLevel.DISK_ONLY)
            spans = window_sessions(events, window).persist(StorageLevel.MEMORY_AND_DISK)
            outputs = day_outputs(classified, window, topics, users, products, events, spans)
            expected = {
                tables.EVENTS: counted.events,
                tables.TRANSACTIONS: counted.transactions,
                tables.DEAD_LETTERS: counted.dead_letters_total,
            }
            rows = {
                tables.EVENTS: outputs.events,
                tables.TRANSACTIONS: outputs.transactions,
                tables.DEAD_LETTERS: outputs.dead_letters,
            }
            for table, n in expected.items():
                progress(f"{day}: writing curated.{table.name}")
                tables.replace_day(self.spark, self.settings, table, rows[table], day, n)
            progress(f"{day}: sessions")
            sessions = outputs.sessions.persist(StorageLevel.MEMORY_AND_DISK)
            n_sessions = sessions.count()
            cut = sessions.where("cut").count()
            tables.replace_day(
                self.spark, self.settings, tables.SESSIONS, sessions.drop("cut"), day, n_sessions
            )
            sessions.unpersist()
            spans.unpersist()
            events.unpersist()
        finally:
            classified.unpersist()
        summary = DaySummary(
            day,
            raw_records=counted.raw_records,
            dead_letters=counted.dead_letters,
            duplicates=counted.duplicates,
            sessions_cut=cut,
        )
        for table in tables.DAY_TABLES:
            summary.rows[table.name] = tables.day_rows(
                self.spark, self.settings, table, day
            ).count()
        summary.seconds = time.monotonic() - started
        self._check(summary, {t.name: n for t, n in expected.items()})
        return summary

    def _check(self, summary: DaySummary, expected: dict[str, int]) -> None:
        wrong = {
            name: (summary.rows[name], n) for name, n in expected.items() if summary.rows[name] != n
        }
        if wrong or not summary.conserved:
            detail = ", ".join(
                f"{k}: wrote {got}, expected {want}" for k, (got, want) in wrong.items()
            )
            raise Problem(
                f"{summary.day}: conservation broken: {summary.raw_records} raw records, "
                f"{summary.accounted} accounted for" + (f" ({detail})" if detail else ""),
                hint="a curated table changed during the run, or a join multiplied rows: "
                "re-run the day; if it persists, this is a bug",
            )


def main(
    settings: Settings,
    days: list[date],
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    horizon: timedelta = DEFAULT_HORIZON,
    driver_memory: str | None = None,
    progress: Progress = lambda line: None,
    warehouse: bool = True,
) -> BatchRun:
    """Build the session from settings, run the days, release everything."""
    from lambdapipe.spark import build_spark

    logging.getLogger("py4j").setLevel(logging.WARNING)
    spark = build_spark(
        settings,
        "lambdapipe-batch",
        lake=True,
        driver_memory=driver_memory or settings.lake.driver_memory,
    )
    # a day is millions of rows through a few shuffles (dedup, sessions, joins): smaller tasks
    # than the streaming jobs' two partitions, which adaptive execution merges where small
    spark.conf.set("spark.sql.adaptive.enabled", "true")
    spark.conf.set("spark.sql.shuffle.partitions", str(BATCH_SHUFFLE_PARTITIONS))
    try:
        job = BatchJob(spark, settings, lookback_days, horizon)
        result = job.run(days, progress)
        if warehouse:
            job.load_warehouse(result, progress)
        return result
    finally:
        spark.stop()
