"""What each micro-batch does on the driver: split, enrich, hand off, dead-letter and write.

Each write carries the token `<query id>:<batch id>:<table>`, so a replayed micro-batch inserts
nothing twice. What a micro-batch wrote is kept as a `BatchOutcome` until the supervisor reads
the batch's progress and accounts for it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame

from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings
from lambdapipe.speed.dead_letters import dead_letter_rows
from lambdapipe.speed.dimensions import Dimensions
from lambdapipe.speed.enrich import enrich_with_tier
from lambdapipe.speed.handoff import HandoffProducer
from lambdapipe.speed.metrics import SpeedMetrics
from lambdapipe.speed.records import LATE, mark_late
from lambdapipe.speed.serving_rows import event_rows, transaction_rows
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


class MicroBatchWriter:
    """The `foreachBatch` functions of both queries, and the outcomes they leave."""

    def __init__(
        self,
        settings: Settings,
        store: ServingStore,
        dimensions: Dimensions,
        dead_letter_producer: DeadLetterProducer,
        handoff: HandoffProducer,
        metrics: SpeedMetrics,
    ) -> None:
        self.settings = settings
        self.dimensions = dimensions
        self.dlq = dead_letter_producer
        self.handoff = handoff
        self.metrics = metrics
        self.sink = ServingSink(
            store,
            settings.speed.store_retry_s,
            on_retry=lambda t: metrics.store_retries.labels(t).inc(),
        )
        self.lateness = timedelta(seconds=settings.speed.lateness_s)
        # ((query id, batch id), newest event time after that micro-batch), the last written
        self._newest: tuple[tuple[str, int], datetime | None] | None = None
        self._outcomes: dict[tuple[str, int], BatchOutcome] = {}
        self._query_ids: dict[str, str] = {}
        self._started = threading.Condition()
        self._lock = threading.Lock()

    def forget_queries(self) -> None:
        """Before a (re)start: the next batches wait for the new queries' ids."""
        with self._started:
            self._query_ids.clear()

    def query_started(self, name: str, query_id: str) -> None:
        """The id of a started query, which its micro-batches put in their tokens."""
        with self._started:
            self._query_ids[name] = query_id
            self._started.notify_all()

    def take_outcome(self, name: str, batch_id: int) -> BatchOutcome | None:
        """What a micro-batch wrote, once; None if it wrote nothing (or was not seen)."""
        with self._lock:
            return self._outcomes.pop((name, batch_id), None)

    def write_records(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of `records`: dead letters, then events and transactions."""
        query_id = self._query_id(RECORDS)
        kafka = self.settings.kafka
        outcome = BatchOutcome(RECORDS, batch_id)
        began = time.monotonic()
        tiers = self._refresh_dimensions()
        # One Spark job per micro-batch; the split and the enrichment are Arrow on the driver.
        before = self._newest_before(query_id, batch_id)
        classified, newest = mark_late(batch.toArrow(), before, self.lateness)
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
            for (reason, topic), n in dead_letter_counts(dead).items():
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
            self.dimensions.tier_version,
            len(self.dimensions.users.rows),
            computed - began,
            time.monotonic() - computed,
        )
        self.sink.record_newest(query_id, batch_id, newest)
        self._newest = ((query_id, batch_id), newest)
        self._keep(outcome)

    def write_sessions(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of `sessions`: the sessions the watermark closed."""
        query_id = self._query_id(SESSIONS)
        outcome = BatchOutcome(SESSIONS, batch_id)
        rows = enrich_with_tier(batch.toArrow(), self._refresh_dimensions())
        self._write(outcome, query_id, SESSIONS_TABLE, rows)
        self._keep(outcome)

    def _newest_before(self, query_id: str, batch_id: int) -> datetime | None:
        """The newest event time of the query's micro-batches before `batch_id`: this run's,
        else what the store recorded (a restart, or a replay of a batch, decides as before)."""
        if self._newest is not None and self._newest[0] == (query_id, batch_id - 1):
            return self._newest[1]
        return self.sink.newest_before(query_id, batch_id)

    def _refresh_dimensions(self) -> pa.Table:
        """Read new CDC records and write the changed dimension rows (no token: the tables keep
        the newest version of each key, so a rewrite changes nothing); the tiers to enrich with.
        Not in the batch's outcome: dimension rows are not records of the topics."""
        self.dimensions.refresh()
        written = self.dimensions.write_changes(lambda table, rows: self.sink.write(table, rows))
        for table, n in written.items():
            self.metrics.rows.labels(table).inc(n)
        return self.dimensions.tier_table()

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
            for age in freshness_seconds(data[time_column], datetime.now(UTC)).to_pylist():
                self.metrics.freshness.labels(table).observe(age)

    def _keep(self, outcome: BatchOutcome) -> None:
        with self._lock:
            self._outcomes[(outcome.query, outcome.batch_id)] = outcome


def freshness_seconds(times: pa.ChunkedArray, now: datetime) -> pa.Array:
    """Seconds from each row's time to `now`: how late the row reaches the store."""
    now_ms = int(now.timestamp() * 1000)
    millis = pc.cast(pc.cast(times, pa.timestamp("ms", tz="UTC")), pa.int64())
    return pc.divide(pc.subtract(pa.scalar(now_ms, pa.int64()), millis), 1000.0)


def dead_letter_counts(dead: pa.Table) -> dict[tuple[str, str], int]:
    """Dead letters per (reason, source topic)."""
    grouped = dead.group_by(["reason", "source_topic"]).aggregate([([], "count_all")])
    return {
        (str(r["reason"]), str(r["source_topic"])): int(r["count_all"]) for r in grouped.to_pylist()
    }
