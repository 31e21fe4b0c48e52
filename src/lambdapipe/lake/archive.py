"""The archiver: one Spark streaming query per raw table, Kafka -> Iceberg, exactly once.

Each query appends with Iceberg's streaming sink (`toTable`): a micro-batch is one Iceberg
commit whose snapshot records the query id and the batch (epoch) id, and a batch replayed after
a crash (committed to Iceberg, not yet to the checkpoint's commit log) is recognised and skipped.
Together with the checkpoint's offset log, every (topic, partition, offset) lands exactly once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from lambdapipe.errors import Problem
from lambdapipe.lake.metrics import LakeMetrics
from lambdapipe.lake.tables import EventTime, RawTable, create_table_sql, qualified, raw_tables
from lambdapipe.settings import Settings
from lambdapipe.spark import stop_between_batches

log = logging.getLogger(__name__)

# Debezium's commit time in epoch milliseconds; values outside these years are not times
_MILLIS_RANGE = (0, 253_402_300_799_999)
# The contracts' event time: a top-level "timestamp" holding an RFC 3339 instant of fixed
# width (schemas/common.json), written compactly by every producer here.
_TIMESTAMP_KEY = '"timestamp":"'
_TIMESTAMP_WIDTH = len("2026-03-02T10:00:00.000Z")
_PREFIX = "_before_timestamp_key"


def _before_timestamp_key(value: Column) -> Column:
    """The value's text up to its first `"timestamp":"` (all of it when there is none), found
    byte by byte; a column of its own, so that it is computed once per record."""
    return F.substring_index(value.cast("string"), _TIMESTAMP_KEY, 1)


def _iso_event_time(value: Column, prefix: Column) -> Column:
    """`$.timestamp` as a timestamp, without a JSON parser where the record allows it.

    Jackson was a quarter of the archiver's JVM time. The fast path reads the instant straight
    from the bytes when the record is a flat JSON object (`{` ... `}`, no other `{` before the
    key) whose first `"timestamp":"` is a top-level key (after `{` or `,`) and whose value is
    `_TIMESTAMP_WIDTH` bytes then a closing quote; it converts those bytes with the same
    function as the parser's string. Everything else (whitespace, nesting, another width, a
    value that does not convert) goes to `get_json_object`, so the result is the parser's.
    `prefix` is `_before_timestamp_key(value)`. Byte positions only (`substring_index`,
    `octet_length`, binary `substring`): character positions walk the text on every use.
    """
    parsed = F.try_to_timestamp(F.get_json_object(value.cast("string"), "$.timestamp"))
    before = F.octet_length(prefix)
    start = before + len(_TIMESTAMP_KEY) + 1
    flat_top_level_key = (
        (before < F.octet_length(value))
        & prefix.startswith("{")
        & (prefix.endswith("{") | prefix.endswith(","))
        & (F.octet_length(F.substring_index(prefix, "{", -1)) == before - 1)
        & (F.substring(value, -1, 1) == F.lit(bytearray(b"}")))
        & (F.substring(value, start + _TIMESTAMP_WIDTH, 1) == F.lit(bytearray(b'"')))
    )
    instant = F.substring(value, start, _TIMESTAMP_WIDTH).cast("string")
    return F.coalesce(F.when(flat_top_level_key, F.try_to_timestamp(instant)), parsed)


def _debezium_event_time(value: Column) -> Column:
    text = value.cast("string")
    millis = F.coalesce(
        F.get_json_object(text, "$.source.ts_ms"), F.get_json_object(text, "$.ts_ms")
    ).try_cast("long")
    low, high = _MILLIS_RANGE
    return F.when(millis.between(low, high), F.timestamp_millis(millis))


def raw_records(kafka: DataFrame, event_time: EventTime) -> DataFrame:
    """Kafka records (with headers) as raw-table rows: the bytes as they are, plus the day
    of the Kafka timestamp and the event time where the value parses."""
    if event_time == "iso_timestamp":
        kafka = kafka.withColumn(_PREFIX, _before_timestamp_key(F.col("value")))
        parsed_time = _iso_event_time(F.col("value"), F.col(_PREFIX))
    else:
        parsed_time = _debezium_event_time(F.col("value"))
    return kafka.select(
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("timestampType").alias("timestamp_type"),
        F.col("key"),
        F.col("value"),
        F.col("headers"),
        F.to_date(F.col("timestamp")).alias("kafka_date"),
        parsed_time.alias("event_time"),
    )


def exact_topic(topic: str) -> str:
    """A subscribe pattern matching one topic: it may not exist yet (Debezium creates the CDC
    topics), and a pattern waits for it where a plain subscription would not. Anchored: Spark
    finds the pattern in topic names, and `events` alone also matches `events.dlq`."""
    return f"^\\Q{topic}\\E$"


def checkpoint_root(settings: Settings) -> str:
    """Where the archiver's queries keep their checkpoints: settings, else <home>/data/lake."""
    configured = settings.lake.checkpoint_location
    return (configured or str(settings.data_dir / "lake" / "checkpoints")).rstrip("/")


@dataclass
class ArchiveSummary:
    """Totals of one `archive` run."""

    commits: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    # when the queries first ran (epoch seconds): the drain rate of a backlog counts from here
    queries_started_at: float | None = None


class Archiver:
    """Creates the raw tables, runs one streaming query per table and follows them."""

    def __init__(
        self, settings: Settings, spark: SparkSession, metrics: LakeMetrics | None = None
    ) -> None:
        self.settings = settings
        self.spark = spark
        self.metrics = metrics or LakeMetrics()
        self.tables = raw_tables(settings)
        self.summary = ArchiveSummary()
        self._seen: dict[str, str] = {}

    def ensure_tables(self) -> None:
        lake = self.settings.lake
        self.spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {lake.catalog}.{lake.namespace}")
        for table in self.tables:
            self.spark.sql(create_table_sql(self.settings, table))

    def source(self, table: RawTable) -> DataFrame:
        kafka, lake = self.settings.kafka, self.settings.lake
        return (
            self.spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", kafka.bootstrap)
            .option("subscribePattern", exact_topic(table.topic))
            .option("startingOffsets", "earliest")
            .option("includeHeaders", "true")
            .option("maxOffsetsPerTrigger", str(lake.max_offsets_per_trigger))
            .option("failOnDataLoss", str(lake.fail_on_data_loss).lower())
            .load()
        )

    def start(self) -> dict[str, StreamingQuery]:
        """Start every table's query from its checkpoint."""
        root = checkpoint_root(self.settings)
        queries = {}
        for table in self.tables:
            queries[table.name] = (
                raw_records(self.source(table), table.event_time)
                .writeStream.queryName(f"lake-{table.name}")
                .format("iceberg")
                .outputMode("append")
                .trigger(processingTime=self.settings.lake.commit_interval)
                .option("checkpointLocation", f"{root}/{table.name}")
                # each Kafka partition's task writes its own files: no shuffle before the
                # write (hash distribution by day sends a whole day to one task, one core),
                # one open file per day in a task (fanout), no sort
                .option("distribution-mode", "none")
                .option("fanout-enabled", "true")
                .toTable(qualified(self.settings, table))
            )
        return queries

    def follow(self, queries: dict[str, StreamingQuery]) -> dict[str, dict[str, int]]:
        """Account for newly committed batches; return each table's committed end offsets."""
        ends: dict[str, dict[str, int]] = {}
        for name, query in queries.items():
            if not query.isActive:
                error = query.exception()
                raise error or RuntimeError(f"archive query {name} stopped")
            progress = _last_progress(query)
            if progress is None:
                continue
            ends[name] = _end_offsets(progress)
            if progress["timestamp"] == self._seen.get(name):
                continue
            self._account(name, progress)
        return ends

    def _account(self, name: str, progress: dict[str, Any]) -> None:
        self._seen[name] = progress["timestamp"]
        rows = int(progress.get("numInputRows") or 0)
        if rows:
            self.summary.commits[name] = self.summary.commits.get(name, 0) + 1
            self.summary.records[name] = self.summary.records.get(name, 0) + rows
            self.metrics.committed(name, rows)

    def stop(self, queries: dict[str, StreamingQuery]) -> None:
        """Stop the queries between micro-batches (a commit is never cut in half on purpose)."""
        stop_between_batches(queries.values())

    def run(
        self,
        until_idle_s: float | None = None,
        on_progress: Callable[[ArchiveSummary], None] | None = None,
        kafka_end_offsets: Callable[[RawTable], dict[int, int]] | None = None,
    ) -> ArchiveSummary:
        """Archive until interrupted, or until every table has caught up with Kafka and stayed
        caught up for `until_idle_s`. A failed query (the object store or the catalog away)
        stops them all; they restart from their checkpoints after a backoff, and nothing a
        failed batch half-wrote is ever committed."""
        self.ensure_tables()
        failures = 0
        while True:
            queries = self.start()
            if self.summary.queries_started_at is None:
                self.summary.queries_started_at = time.time()
                log.info("archiving %d tables from Kafka", len(queries))
            commits = sum(self.summary.commits.values())
            try:
                self.watch(queries, until_idle_s, on_progress, kafka_end_offsets)
                self.stop(queries)
                self.follow_final(queries)
                return self.summary
            except (StreamingQueryException, RuntimeError) as exc:
                self.stop(queries)
                # consecutive failures only: a restart that committed again starts over
                failures = 1 if sum(self.summary.commits.values()) > commits else failures + 1
                self.summary.restarts += 1
                self.metrics.restarts.inc()
                if failures > self.settings.lake.max_restarts:
                    raise Problem(
                        f"the archiver failed {failures} times in a row: {_first_line(exc)}",
                        hint="check S3 and the catalog's PostgreSQL (`lambdapipe status`)",
                    ) from exc
                log.warning("a query failed (%s); restart %d", _first_line(exc), failures)
                time.sleep(min(2.0**failures, 30.0))
            except KeyboardInterrupt:
                self.stop(queries)
                raise

    def watch(
        self,
        queries: dict[str, StreamingQuery],
        until_idle_s: float | None,
        on_progress: Callable[[ArchiveSummary], None] | None,
        kafka_end_offsets: Callable[[RawTable], dict[int, int]] | None,
    ) -> None:
        """Follow the queries until idle (if asked); raise when one fails."""
        caught_up_since: float | None = None
        while True:
            ends = self.follow(queries)
            if on_progress is not None:
                on_progress(self.summary)
            if until_idle_s is not None and kafka_end_offsets is not None:
                if self._caught_up(queries, ends, kafka_end_offsets):
                    caught_up_since = caught_up_since or time.monotonic()
                    if time.monotonic() - caught_up_since >= until_idle_s:
                        return
                else:
                    caught_up_since = None
            time.sleep(1.0)

    def follow_final(self, queries: dict[str, StreamingQuery]) -> None:
        for name, query in queries.items():
            progress = _last_progress(query)
            if progress is not None and progress["timestamp"] != self._seen.get(name):
                self._account(name, progress)

    def _caught_up(
        self,
        queries: dict[str, StreamingQuery],
        ends: dict[str, dict[str, int]],
        kafka_end_offsets: Callable[[RawTable], dict[int, int]],
    ) -> bool:
        for table in self.tables:
            if queries[table.name].status["isTriggerActive"]:
                return False
            kafka = {p: end for p, end in kafka_end_offsets(table).items() if end > 0}
            archived = ends.get(table.name, {})
            if any(archived.get(str(p), 0) < end for p, end in kafka.items()):
                return False
        return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _last_progress(query: StreamingQuery) -> dict[str, Any] | None:
    # one JSON string over Py4J instead of PySpark's field-by-field walk of the Java object
    last = query._jsq.lastProgress()
    return None if last is None else dict(json.loads(last.json()))


def _end_offsets(progress: dict[str, Any]) -> dict[str, int]:
    """The committed end offsets of a progress report: {partition: next offset}."""
    ends: dict[str, int] = {}
    for source in progress.get("sources") or []:
        raw = source.get("endOffset")
        offsets = json.loads(raw) if isinstance(raw, str) else raw or {}
        for partitions in offsets.values():
            ends.update({str(p): int(o) for p, o in partitions.items()})
    return ends


def main(
    settings: Settings,
    until_idle_s: float | None = None,
    on_progress: Callable[[ArchiveSummary], None] | None = None,
) -> ArchiveSummary:
    """Build the session from settings, archive, release everything."""
    from lambdapipe.lake.offsets import KafkaOffsets
    from lambdapipe.spark import build_spark, interrupt_on_sigterm

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    interrupt_on_sigterm()
    spark = build_spark(
        settings, "lambdapipe-lake-archive", lake=True, driver_memory=settings.lake.driver_memory
    )
    metrics = LakeMetrics()
    if settings.lake.metrics_port:
        metrics.serve(settings, settings.lake.metrics_port)
    offsets = KafkaOffsets(settings)
    try:
        archiver = Archiver(settings, spark, metrics)
        return archiver.run(until_idle_s, on_progress, offsets.end_offsets)
    finally:
        offsets.close()
        spark.stop()
