"""The records query hands its accepted events to the sessions query through Kafka.

Without it both queries read and validate every event. The records query has each micro-batch's
accepted, deduplicated events in Arrow anyway: it publishes the columns sessionization needs as
Arrow IPC chunks on the accepted-events topic (`KafkaSettings.accepted`), and the sessions query
reads them back without parsing or validating. At least once: a replayed micro-batch publishes
its chunks again, and the sessions query drops repeated event_ids within its watermark.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Final

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from lambdapipe.speed.records import record_struct
from lambdapipe.speed.sink import ConfirmedProducer

SESSION_COLUMNS: Final = (
    "event_id",
    "session_id",
    "user_id",
    "event_type",
    "timestamp",
    "amount",
    "quantity",
    "device_type",
    "browser",
)
# Rows per Kafka message: ~150 bytes each, well under the broker's 1 MB message limit.
CHUNK_ROWS: Final = 2_000


@functools.cache
def handoff_schema() -> StructType:
    """The Spark columns of the handed-off events."""
    fields = {f.name: f for f in record_struct("user_event").fields}
    return StructType([fields[name] for name in SESSION_COLUMNS])


@functools.cache
def _arrow_schema() -> pa.Schema:
    return to_arrow_schema(handoff_schema())


def encode(events: pa.Table) -> list[bytes]:
    """`user_events_realtime` rows -> Arrow IPC streams of the session columns, chunk by chunk."""
    table = events.select(list(SESSION_COLUMNS)).cast(_arrow_schema())
    messages = []
    for batch in table.to_batches(max_chunksize=CHUNK_ROWS):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_batch(batch)
        messages.append(sink.getvalue().to_pybytes())
    return messages


def decode(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Kafka rows (`value`: one IPC stream each) -> the handed-off events, for `mapInArrow`."""
    for batch in batches:
        for value in batch.column("value").to_pylist():
            yield from pa.ipc.open_stream(value)


def handed_off_events(raw: DataFrame) -> DataFrame:
    """In Spark: Kafka rows of the accepted-events topic -> events with `event_time`."""
    events = raw.select("value").mapInArrow(decode, handoff_schema())
    return events.withColumn("event_time", F.col("timestamp"))


class HandoffProducer(ConfirmedProducer):
    """Publishes a micro-batch's accepted events and waits until the broker has them all."""

    def send(self, events: pa.Table, batch_id: int, timeout_s: float = 60.0) -> int:
        """Publish `events` (`user_events_realtime` rows); return the messages sent.

        Oldest first, all on one partition (one key per batch): the sessions query never reads
        an event after a newer one of the same micro-batch, so its watermark (from what it read
        before) stays below every event the records query kept (docs/speed.md).
        """
        messages = encode(events.sort_by("timestamp"))
        key = str(batch_id).encode()
        for message in messages:
            self.produce(message, key)
        self.confirm(timeout_s)
        return len(messages)
