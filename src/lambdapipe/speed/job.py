"""The speed-layer job: two streaming queries from Kafka into the serving store.

`records`: events and transactions -> validate -> deduplicate -> dead letters to the DLQ and
`dead_letters_realtime`; accepted records enriched with the tier into `user_events_realtime` and
`transactions_realtime`; the accepted events also go to the accepted-events topic (`handoff`).
`sessions`: that topic -> deduplicate -> `session_window` -> `user_sessions_realtime`. Each
micro-batch writes with tokens `<query id>:<batch id>:<table>`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from lambdapipe.contracts.validate import Limits
from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings
from lambdapipe.spark import checkpoint_root
from lambdapipe.speed.dead_letters import dead_letter_rows
from lambdapipe.speed.deduplicate import deduplicate, deduplicate_events
from lambdapipe.speed.dimensions import TierState
from lambdapipe.speed.enrich import enrich_with_tier
from lambdapipe.speed.handoff import HandoffProducer, handed_off_events
from lambdapipe.speed.metrics import SpeedMetrics
from lambdapipe.speed.records import LATE, classify_records
from lambdapipe.speed.serving_rows import event_rows, transaction_rows
from lambdapipe.speed.sessionize import session_rows, sessionize
from lambdapipe.speed.sink import DeadLetterProducer, ServingSink, insert_token

log = logging.getLogger(__name__)

RECORDS: Final = "records"
SESSIONS: Final = "sessions"
EVENTS_TABLE: Final = "user_events_realtime"
TRANSACTIONS_TABLE: Final = "transactions_realtime"
SESSIONS_TABLE: Final = "user_sessions_realtime"
DEAD_LETTERS_TABLE: Final = "dead_letters_realtime"


@dataclass
class BatchOutcome:
    """What one micro-batch of one query wrote."""

    query: str
    batch_id: int
    rows: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)


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


def _freshness_seconds(times: pa.ChunkedArray, now: datetime) -> pa.Array:
    now_ms = int(now.timestamp() * 1000)
    millis = pc.cast(pc.cast(times, pa.timestamp("ms", tz="UTC")), pa.int64())
    return pc.divide(pc.subtract(pa.scalar(now_ms, pa.int64()), millis), 1000.0)


class SpeedJob:
    """Builds, starts, watches and restarts the speed layer's streaming queries."""

    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        store: ServingStore,
        tiers: TierState,
        dead_letter_producer: DeadLetterProducer,
        handoff: HandoffProducer,
        metrics: SpeedMetrics,
    ) -> None:
        speed = settings.speed
        self.settings = settings
        self.spark = spark
        self.tiers = tiers
        self.dlq = dead_letter_producer
        self.handoff = handoff
        self.metrics = metrics
        self.sink = ServingSink(
            store, speed.store_retry_s, on_retry=lambda t: metrics.store_retries.labels(t).inc()
        )
        self.lateness = timedelta(seconds=speed.lateness_s)
        self.skew = timedelta(seconds=speed.max_future_skew_s)
        self.limits = Limits(max_future_skew=self.skew)
        self.gap = timedelta(seconds=speed.session_gap_s)
        self.checkpoints = checkpoint_root(settings).rstrip("/")
        self.summary = RunSummary()
        self.outcomes: dict[tuple[str, int], BatchOutcome] = {}
        self._query_ids: dict[str, str] = {}
        self._started = threading.Condition()
        self._lock = threading.Lock()
        self._observed: set[tuple[str, int]] = set()
        self._last_progress: dict[str, str] = {}

    # --- the plans -------------------------------------------------------------------------

    def _source(self, topics: list[str]) -> DataFrame:
        speed, kafka = self.settings.speed, self.settings.kafka
        source = (
            self.spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", kafka.bootstrap)
            .option("subscribe", ",".join(topics))
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", str(speed.max_offsets_per_trigger))
            .option("failOnDataLoss", str(speed.fail_on_data_loss).lower())
            .load()
        )
        # One Spark task per Kafka partition (12 here) pays the Python validator's per-task cost
        # 12 times a micro-batch; on 2 cores, 2 tasks cut a 7K-event batch from ~6.5 s to ~2.7 s.
        if speed.source_partitions > 0:
            source = source.coalesce(speed.source_partitions)
        return source

    def _classified(self, topics: list[str]) -> DataFrame:
        kafka = self.settings.kafka
        return classify_records(
            self._source(topics),
            events_topic=kafka.events_topic,
            transactions_topic=kafka.transactions_topic,
            lateness=self.lateness,
            limits=self.limits,
        )

    def records_plan(self) -> DataFrame:
        """Events and transactions, validated and deduplicated (dead letters included)."""
        kafka = self.settings.kafka
        classified = self._classified([kafka.events_topic, kafka.transactions_topic])
        return deduplicate(classified, self.lateness, self.skew)

    def sessions_plan(self) -> DataFrame:
        """Closed sessions of the accepted events the records query handed off."""
        events = handed_off_events(self._source([self.settings.kafka.accepted]))
        sessions = sessionize(deduplicate_events(events, self.lateness, self.skew), self.gap)
        # shaped in the plan: a micro-batch then costs no Py4J calls to build expressions
        return session_rows(sessions)

    # --- the micro-batches -----------------------------------------------------------------

    def _query_id(self, name: str) -> str:
        with self._started:
            self._started.wait_for(lambda: name in self._query_ids, timeout=60)
            return self._query_ids[name]

    def _write(self, outcome: BatchOutcome, query_id: str, table: str, data: pa.Table) -> None:
        token = insert_token(query_id, outcome.batch_id, table)
        written = self.sink.write(table, data, token)
        outcome.rows[table] = written
        self.metrics.rows.labels(table).inc(written)
        time_column = {SESSIONS_TABLE: "session_end", DEAD_LETTERS_TABLE: None}.get(
            table, "timestamp"
        )
        if written and time_column is not None:
            for age in _freshness_seconds(data[time_column], datetime.now(UTC)).to_pylist():
                self.metrics.freshness.labels(table).observe(age)

    def write_records(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of `records`: dead letters, then events and transactions."""
        query_id = self._query_id(RECORDS)
        kafka = self.settings.kafka
        outcome = BatchOutcome(RECORDS, batch_id)
        began = time.monotonic()
        self.tiers.refresh()
        tiers = self.tiers.table()
        # One Spark job per micro-batch; the split and the enrichment are Arrow on the driver.
        classified = batch.toArrow()
        computed = time.monotonic()
        dead = dead_letter_rows(classified)
        events = enrich_with_tier(event_rows(classified, kafka.events_topic), tiers)
        transactions = enrich_with_tier(
            transaction_rows(classified, kafka.transactions_topic), tiers
        )
        # before the store: a batch that fails here is replayed whole, nothing is missed
        self.handoff.send(events, batch_id)
        if dead.num_rows:
            self.dlq.send(dead)
            self._write(outcome, query_id, DEAD_LETTERS_TABLE, dead.drop_columns(["key"]))
            for (reason, topic), n in _dead_letter_counts(dead).items():
                outcome.dead_letters[reason] = outcome.dead_letters.get(reason, 0) + n
                self.metrics.dead_letters.labels(reason, topic).inc(n)
                if reason == LATE:
                    self.metrics.late.inc(n)
        self._write(outcome, query_id, EVENTS_TABLE, events)
        self._write(outcome, query_id, TRANSACTIONS_TABLE, transactions)
        log.info(
            "records batch %d: %d events, %d transactions, %d dead letters; tiers v%d (%d users);"
            " computed in %.1f s, written in %.1f s",
            batch_id,
            events.num_rows,
            transactions.num_rows,
            dead.num_rows,
            self.tiers.version,
            len(self.tiers.tiers),
            computed - began,
            time.monotonic() - computed,
        )
        self._record(outcome)

    def write_sessions(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of `sessions`: the sessions the watermark closed."""
        query_id = self._query_id(SESSIONS)
        outcome = BatchOutcome(SESSIONS, batch_id)
        self.tiers.refresh()
        rows = enrich_with_tier(batch.toArrow(), self.tiers.table())
        self._write(outcome, query_id, SESSIONS_TABLE, rows)
        self._record(outcome)

    def _record(self, outcome: BatchOutcome) -> None:
        with self._lock:
            self.outcomes[(outcome.query, outcome.batch_id)] = outcome

    # --- running ---------------------------------------------------------------------------

    def start(self) -> dict[str, StreamingQuery]:
        """Start both queries from their checkpoints."""
        trigger = self.settings.speed.trigger_interval
        with self._started:
            self._query_ids.clear()
        plans: dict[str, tuple[DataFrame, Callable[[DataFrame, int], None]]] = {
            RECORDS: (self.records_plan(), self.write_records),
            SESSIONS: (self.sessions_plan(), self.write_sessions),
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
            with self._started:
                self._query_ids[name] = str(query.id)
                self._started.notify_all()
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
        with self._lock:
            outcome = self.outcomes.pop((name, batch_id), None)
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
        for query in queries.values():
            deadline = time.monotonic() + 120
            while query.isActive and query.status["isTriggerActive"]:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            query.stop()

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


def _dead_letter_counts(dead: pa.Table) -> dict[tuple[str, str], int]:
    grouped = dead.group_by(["reason", "source_topic"]).aggregate([([], "count_all")])
    return {
        (str(r["reason"]), str(r["source_topic"])): int(r["count_all"]) for r in grouped.to_pylist()
    }


def main(
    settings: Settings,
    until_idle_s: float | None = None,
    on_progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Build the edges from settings, run the job, release everything."""
    from lambdapipe.resources import Resources
    from lambdapipe.spark import build_spark
    from lambdapipe.speed.metrics import write_prometheus_target
    from lambdapipe.topics import ensure_topics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("py4j", "httpx"):  # a line per Py4J command and per HTTP request
        logging.getLogger(chatty).setLevel(logging.WARNING)
    metrics = SpeedMetrics()
    if settings.speed.metrics_port:
        metrics.serve(settings.speed.metrics_port)
        write_prometheus_target(settings, settings.speed.metrics_port)
    spark = build_spark(settings)
    store = Resources(settings).store()
    tiers = TierState(settings)
    dlq = DeadLetterProducer(settings.kafka.bootstrap, settings.kafka.dlq_topic)
    handoff = HandoffProducer(settings.kafka.bootstrap, settings.kafka.accepted)
    try:
        ensure_topics(settings)
        tiers.refresh()
        job = SpeedJob(settings, spark, store, tiers, dlq, handoff, metrics)
        return job.run(until_idle_s, on_progress)
    finally:
        handoff.close()
        dlq.close()
        tiers.close()
        store.close()
        spark.stop()
