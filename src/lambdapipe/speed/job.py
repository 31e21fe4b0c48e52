"""The speed-layer job: starts, watches and restarts the two streaming queries, and `main`.

The plans are in `plans.py`, what a micro-batch writes in `writers.py`. The supervisor follows
each query's progress, accounts for every consumed record (conservation: consumed = written +
duplicates, checked per micro-batch) and restarts failed queries from their checkpoints.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from lambdapipe.settings import Settings
from lambdapipe.spark import stop_between_batches
from lambdapipe.speed.dimensions import Dimensions
from lambdapipe.speed.handoff import HandoffProducer
from lambdapipe.speed.metrics import SpeedMetrics
from lambdapipe.speed.plans import records_plan, sessions_plan
from lambdapipe.speed.sink import DeadLetterProducer
from lambdapipe.speed.writers import RECORDS, SESSIONS, SESSIONS_TABLE, MicroBatchWriter

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """Totals of one `run`, for the CLI's summary and for tests."""

    batches: int = 0
    consumed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    dropped_by_watermark: int = 0
    restarts: int = 0


def checkpoint_root(settings: Settings) -> str:
    """Where the streaming queries keep their checkpoints: settings, else <home>/data/speed."""
    configured = settings.speed.checkpoint_location
    return configured or str(settings.data_dir / "speed" / "checkpoints")


class SpeedJob:
    """Starts, watches and restarts the speed layer's streaming queries."""

    def __init__(self, settings: Settings, spark: SparkSession, writer: MicroBatchWriter) -> None:
        self.settings = settings
        self.spark = spark
        self.writer = writer
        self.metrics = writer.metrics
        self.checkpoints = checkpoint_root(settings).rstrip("/")
        self.summary = RunSummary()
        self._observed: set[tuple[str, int]] = set()
        self._last_progress: dict[str, str] = {}

    def start(self) -> dict[str, StreamingQuery]:
        """Start both queries from their checkpoints."""
        trigger = self.settings.speed.trigger_interval
        self.writer.forget_queries()
        plans: dict[str, tuple[DataFrame, Callable[[DataFrame, int], None]]] = {
            RECORDS: (records_plan(self.spark, self.settings), self.writer.write_records),
            SESSIONS: (sessions_plan(self.spark, self.settings), self.writer.write_sessions),
        }
        queries = {}
        for name, (plan, write) in plans.items():
            query = (
                plan.writeStream.queryName(f"speed-{name}")
                .outputMode("append")
                .option("checkpointLocation", f"{self.checkpoints}/{name}")
                .trigger(processingTime=trigger)
                .foreachBatch(write)
                .start()
            )
            self.writer.query_started(name, str(query.id))
            queries[name] = query
        return queries

    def _observe(self, name: str, progress: dict[str, Any]) -> None:
        batch_id = int(progress["batchId"])
        consumed = int(progress.get("numInputRows") or 0)
        self.metrics.observe_progress(name, progress)
        operators = progress.get("stateOperators") or []
        dropped = sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in operators)
        summary = self.summary
        summary.batches += 1
        summary.dropped_by_watermark += dropped
        outcome = self.writer.take_outcome(name, batch_id)
        if name != RECORDS:
            return
        summary.consumed += consumed
        written = 0
        if outcome is not None:
            for table, n in outcome.rows.items():
                summary.rows[table] = summary.rows.get(table, 0) + n
            for reason, n in outcome.dead_letters.items():
                summary.dead_letters[reason] = summary.dead_letters.get(reason, 0) + n
            written = sum(n for t, n in outcome.rows.items() if t != SESSIONS_TABLE)
        duplicates = consumed - written
        summary.duplicates += duplicates
        self.metrics.duplicates.inc(max(duplicates, 0))
        declared = sum(
            int((op.get("customMetrics") or {}).get("numDroppedDuplicateRows", 0))
            for op in operators
        )
        if duplicates < 0 or (operators and declared != duplicates) or dropped:
            self.metrics.conservation_errors.inc()
            log.error(
                "conservation broken in batch %s: consumed %s, written %s, duplicates %s/%s",
                batch_id,
                consumed,
                written,
                declared,
                duplicates,
            )

    def _follow(self, name: str, query: StreamingQuery, observed: set[tuple[str, int]]) -> bool:
        """Observe the executed batches not seen yet; True if one of them read records."""
        had_data = False
        for progress in _recent_progress(query, self._last_progress.get(name)):
            self._last_progress[name] = progress["timestamp"]
            key = (name, int(progress["batchId"]))
            if "addBatch" not in (progress.get("durationMs") or {}) or key in observed:
                continue
            observed.add(key)
            self._observe(name, progress)
            had_data = had_data or int(progress.get("numInputRows") or 0) > 0
        return had_data

    def watch(
        self,
        queries: dict[str, StreamingQuery],
        until_idle_s: float | None,
        on_progress: Callable[[RunSummary], None] | None = None,
    ) -> None:
        """Follow the queries' progress until idle (if asked); raise when a query fails."""
        last_data = time.monotonic()
        while True:
            for name, query in queries.items():
                if not query.isActive:
                    error = query.exception()
                    raise error or RuntimeError(f"query {name} stopped")
                if self._follow(name, query, self._observed) or _busy(query):
                    last_data = time.monotonic()
            if on_progress is not None:
                on_progress(self.summary)
            if until_idle_s is not None and time.monotonic() - last_data > until_idle_s:
                return
            time.sleep(0.5)

    def stop(self, queries: dict[str, StreamingQuery]) -> None:
        """Stop the queries between micro-batches."""
        stop_between_batches(queries.values())

    def run(
        self,
        until_idle_s: float | None = None,
        on_progress: Callable[[RunSummary], None] | None = None,
    ) -> RunSummary:
        """Run until idle (or forever); restart failed queries from their checkpoints."""
        restarts = 0
        while True:
            queries = self.start()
            try:
                self.watch(queries, until_idle_s, on_progress)
                self.stop(queries)
                self._drain(queries)
                return self.summary
            except (StreamingQueryException, RuntimeError) as exc:
                self.stop(queries)
                restarts += 1
                self.summary.restarts = restarts
                self.metrics.restarts.inc()
                if restarts > self.settings.speed.max_restarts:
                    raise
                log.warning("a query failed (%s); restart %d from the checkpoint", exc, restarts)
                time.sleep(min(2.0**restarts, 30.0))
            except KeyboardInterrupt:
                self.stop(queries)
                raise

    def _drain(self, queries: dict[str, StreamingQuery]) -> None:
        """Account for the progress reported after the last look."""
        for name, query in queries.items():
            self._follow(name, query, self._observed)


def _recent_progress(query: StreamingQuery, seen: str | None) -> list[dict[str, Any]]:
    """The query's progress reports after the one stamped `seen`, oldest first, as JSON dicts.

    PySpark's own `recentProgress` walks every field over Py4J, and each Java collection it
    iterates ends in an exception whose conversion scans the classpath: measured, a quarter of
    the job's JVM time. One `json()` call per report costs a fraction of that.
    """
    jquery = query._jsq
    last = jquery.lastProgress()
    if last is None or last.timestamp() == seen:
        return []
    reports = jquery.recentProgress()
    parsed = [json.loads(reports[i].json()) for i in range(len(reports))]
    return [p for p in parsed if seen is None or p["timestamp"] > seen]


def _busy(query: StreamingQuery) -> bool:
    """A micro-batch with data is running (it may take longer than the idle timeout)."""
    status = query.status
    return bool(status["isTriggerActive"] and status["isDataAvailable"])


def main(
    settings: Settings,
    until_idle_s: float | None = None,
    on_progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Build the edges from settings, run the job, release everything."""
    from lambdapipe.observability.targets import register_target
    from lambdapipe.resources import Resources
    from lambdapipe.spark import build_spark, interrupt_on_sigterm
    from lambdapipe.topics import ensure_topics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("py4j", "httpx"):  # a line per Py4J command and per HTTP request
        logging.getLogger(chatty).setLevel(logging.WARNING)
    interrupt_on_sigterm()
    metrics = SpeedMetrics()
    if settings.speed.metrics_port:
        metrics.serve(settings.speed.metrics_port)
        register_target(settings, "speed", "127.0.0.1", settings.speed.metrics_port)
    spark = build_spark(settings)
    store = Resources(settings).store()
    dimensions = Dimensions(settings)
    dlq = DeadLetterProducer(settings.kafka.bootstrap, settings.kafka.dlq_topic)
    handoff = HandoffProducer(settings.kafka.bootstrap, settings.kafka.accepted)
    try:
        ensure_topics(settings)
        dimensions.refresh()
        writer = MicroBatchWriter(settings, store, dimensions, dlq, handoff, metrics)
        job = SpeedJob(settings, spark, writer)
        return job.run(until_idle_s, on_progress)
    finally:
        handoff.close()
        dlq.close()
        dimensions.close()
        store.close()
        spark.stop()
