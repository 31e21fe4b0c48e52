"""Writes to the serving store, exactly once per micro-batch, and to the Kafka dead-letter topic.

Every insert carries the token `<query id>:<batch id>:<table>`: a replayed batch (after a crash,
before Spark committed it) inserts nothing twice. A store that does not answer is retried with
exponential backoff for `store_retry_s`; after that the batch fails, the query stops, and the
job restarts it from its checkpoint (the same batch, the same tokens).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Producer

from lambdapipe.serving.ddl import SPEED_WATERMARKS
from lambdapipe.serving.store import ServingStore, StoreError
from lambdapipe.speed.dead_letters import DLQ_HEADERS

log = logging.getLogger(__name__)

FIRST_BACKOFF_S: Final = 0.25
MAX_BACKOFF_S: Final = 5.0
T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The store refused or missed every attempt for the whole retry budget."""


def insert_token(query_id: str, batch_id: int, table: str) -> str:
    """The deterministic insert deduplication token of one table in one micro-batch."""
    return f"{query_id}:{batch_id}:{table}"


def to_store_types(data: pa.Table) -> pa.Table:
    """Arrow from Spark as the store reads it: timestamps in ms (UTC), nothing else changed."""
    columns = []
    for field, column in zip(data.schema, data.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            column = pc.cast(column, pa.timestamp("ms", tz="UTC"), safe=False)
        columns.append(column)
    return pa.table(columns, names=data.column_names)


class ServingSink:
    """Inserts Arrow batches into the store with tokens, retrying while it is unreachable."""

    def __init__(
        self,
        store: ServingStore,
        retry_s: float,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.retry_s = retry_s
        self._sleep = sleep
        self._on_retry = on_retry

    def write(self, table: str, data: pa.Table, token: str | None = None) -> int:
        """Insert `data` into `table` once (per token; without one, the table itself must make
        a replay harmless); raise StoreUnavailable after the budget."""
        if data.num_rows == 0:
            return 0
        data = to_store_types(data)
        return self._retrying(
            f"insert into {table}", table, lambda: self.store.insert_arrow(table, data, token)
        )

    def newest_before(self, query_id: str, batch_id: int) -> datetime | None:
        """The newest event time recorded after the query's last micro-batch before `batch_id`
        (None: none recorded, or no event yet)."""
        rows = self._retrying(
            "reading the speed layer's watermark",
            SPEED_WATERMARKS,
            lambda: self.store.query_rows(
                f"SELECT newest FROM {SPEED_WATERMARKS} FINAL "  # noqa: S608
                "WHERE query_id = {query:String} AND batch_id < {batch:UInt64} "
                "ORDER BY batch_id DESC LIMIT 1",
                {"query": query_id, "batch": batch_id},
            ),
        )
        newest = rows[0]["newest"] if rows else None
        if not isinstance(newest, datetime):
            return None
        return newest if newest.tzinfo else newest.replace(tzinfo=UTC)

    def record_newest(self, query_id: str, batch_id: int, newest: datetime | None) -> None:
        """Record the newest event time after micro-batch `batch_id` (once per batch)."""
        row = pa.table(
            {
                "query_id": [query_id],
                "batch_id": pa.array([batch_id], pa.uint64()),
                "newest": pa.array([newest], pa.timestamp("ms", tz="UTC")),
            }
        )
        self.write(SPEED_WATERMARKS, row, insert_token(query_id, batch_id, SPEED_WATERMARKS))

    def _retrying(self, what: str, table: str, attempt: Callable[[], T]) -> T:
        began = time.monotonic()
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                return attempt()
            except (StoreError, OSError) as exc:
                waited = time.monotonic() - began
                if waited + backoff > self.retry_s:
                    raise StoreUnavailable(f"{what} failed for {waited:.0f}s: {exc}") from exc
                log.warning("%s failed (%s); retrying in %.2fs", what, exc, backoff)
                if self._on_retry is not None:
                    self._on_retry(table)
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)


def _header(value: object) -> bytes:
    if value is None:
        return b""
    if hasattr(value, "isoformat"):
        return str(value.isoformat()).encode()
    return str(value).encode()


class ConfirmedProducer:
    """A Kafka producer (acks=all, idempotent) whose `confirm` waits for every record sent."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": "lz4",
                "linger.ms": 5,
                "log_level": 3,
            }
        )
        self._errors: list[str] = []

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def produce(
        self, value: bytes | None, key: bytes | None, headers: list[Any] | None = None
    ) -> None:
        """Queue one record."""
        self._producer.produce(
            self.topic, value=value, key=key, headers=headers, on_delivery=self._delivered
        )
        self._producer.poll(0)

    def confirm(self, timeout_s: float = 60.0) -> None:
        """Wait until the broker has every queued record; raise if one was not delivered."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise StoreUnavailable(
                f"topic {self.topic}: {remaining} undelivered, errors {errors[:3]}"
            )

    def close(self) -> None:
        """Deliver what is pending."""
        self._producer.flush(30)


class DeadLetterProducer(ConfirmedProducer):
    """Sends dead letters to the Kafka DLQ: original key and value, the verdict in headers.

    At least once: a replayed batch sends its dead letters again; (source_topic,
    source_partition, source_offset) identifies a dead letter, and readers deduplicate on it.
    """

    def send(self, dead: pa.Table, timeout_s: float = 60.0) -> int:
        """Send every row of `dead` (`dead_letter_rows` columns) and wait for the broker."""
        for row in dead.to_pylist():
            headers = [(name, _header(row[name])) for name in DLQ_HEADERS]
            self.produce(row["raw"], row["key"], headers)
        self.confirm(timeout_s)
        return int(dead.num_rows)
