"""Parse and validate raw Kafka records of `events` and `transactions`; decide lateness.

Every record gets a verdict: null (accepted), a contracts `Reason`, or `late`. Validation
needs no state; lateness is judged on event time, on the driver, by `mark_late`: a record is late
when its event time is below the event-time watermark, the newest event time of the micro-batches
before minus `lateness` (ARCHITECTURE.md decision 9). A backlog, a restart after an outage or a
backfill of old days is therefore on time; only records that are old compared with the stream
before them are late.

Why one Arrow pass in Python (`classify_batch` through `mapInArrow`): the validator parses each
record anyway, so the same pass hands Spark the store-typed columns of the accepted records.
Measured on 200K records in local[2], validating and collecting the accepted rows: a pandas UDF
for the verdict plus `from_json` and casts in the JVM 42K records/s, this pass 100K/s
(docs/speed.md, "Why validation runs in one Arrow pass").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    DataType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lambdapipe.contracts import validate_event, validate_transaction
from lambdapipe.contracts.clickhouse import enriched_columns
from lambdapipe.contracts.spark import MONEY_TYPE, spark_schema
from lambdapipe.contracts.validate import (
    DEFAULT_LIMITS,
    EVENT_TIME_FIELD,
    Limits,
    ValidationResult,
)

# The speed layer's own reasons, beside the contracts taxonomy.
LATE: Final = "late"  # valid, but too old to stream
UNKNOWN_TOPIC: Final = "unknown_topic"
EVENT_KEY_PREFIX: Final = "e:"
TRANSACTION_KEY_PREFIX: Final = "t:"
# (struct column, contracts entity): the accepted record, typed as the store's columns.
RECORD_STRUCTS: Final = (("event", "user_event"), ("transaction", "transaction"))
_RAW_COLUMNS: Final = ("key", "value", "topic", "partition", "offset", "batch_time")
_BYTES: Final = ("key", "value")


def _store_type(entity: str, name: str, clickhouse_type: str) -> DataType:
    if "Decimal" in clickhouse_type:
        return MONEY_TYPE
    if "DateTime64" in clickhouse_type:
        return TimestampType()
    return spark_schema(entity)[name].dataType


def record_struct(entity: str) -> StructType:
    """The store's columns of `entity` (without `user_tier`) as Spark types."""
    columns = enriched_columns(entity)[:-1]
    return StructType([StructField(n, _store_type(entity, n, t)) for n, t in columns])


@functools.cache
def classified_schema() -> StructType:
    """The columns `classify_records` adds to (and keeps of) the Kafka rows."""
    return StructType(
        [
            # the original bytes, for dead letters (the batch layer drops them for accepted rows)
            StructField("key", BinaryType()),
            StructField("value", BinaryType()),
            StructField("topic", StringType()),
            StructField("partition", IntegerType()),
            StructField("offset", LongType()),
            StructField("batch_time", TimestampType()),
            *[StructField(name, record_struct(entity)) for name, entity in RECORD_STRUCTS],
            StructField("event_type", StringType()),
            StructField("event_time", TimestampType()),
            StructField("reason", StringType()),
            StructField("detail", StringType()),
            StructField("accepted", BooleanType()),
            StructField("dedup_key", StringType()),
        ]
    )


_TIMESTAMP: Final = pa.timestamp("us", tz="UTC")  # how Spark exchanges TimestampType


@functools.cache
def _arrow_schema() -> pa.Schema:
    return to_arrow_schema(classified_schema())


def _wire_type(data_type: pa.DataType) -> pa.DataType:
    """Money and timestamps travel as strings in the JSON."""
    if pa.types.is_decimal(data_type) or pa.types.is_timestamp(data_type):
        return pa.string()
    return data_type


def _records_array(records: list[dict[str, Any]], struct: pa.StructType) -> pa.StructArray:
    """Parsed, valid records as one struct array of store types."""
    wire = pa.schema([pa.field(f.name, _wire_type(f.type)) for f in struct])
    table = pa.Table.from_pylist(records, schema=wire)
    children = [pc.cast(table.column(f.name), f.type).combine_chunks() for f in struct]
    return pa.StructArray.from_arrays(children, fields=list(struct))


@dataclass(frozen=True)
class _Kind:
    """How the records of one topic are validated, stored and keyed."""

    struct: str
    validate: Callable[..., ValidationResult]
    dedup_key: str  # a format string over the record


def _scatter(values: pa.Array, positions: list[int | None]) -> pa.Array:
    """`values[positions[i]]` for each row, null where the position is None."""
    return pc.take(values, pa.array(positions, pa.int64()))


def classify_batch(
    batch: pa.RecordBatch,
    *,
    events_topic: str,
    transactions_topic: str,
    limits: Limits = DEFAULT_LIMITS,
) -> pa.RecordBatch:
    """Kafka rows (key, value, topic, partition, offset, batch_time) -> `classified_schema()`.

    Accepted records get their parsed columns in `event` / `transaction` and an `event_time`;
    the rest keep their original key and value for the dead-letter topic. `dedup_key` is
    `e:<event_id>` / `t:<transaction_id>` for accepted records, `<topic>/<partition>/<offset>`
    (unique, so never deduplicated) for the rest.

    Each record is validated against its row's `batch_time` (one value per micro-batch in the
    speed layer; the batch layer passes each record's Kafka timestamp): the future-skew check.
    """
    schema = _arrow_schema()
    size = batch.num_rows
    times = batch.column("batch_time")
    batch_time = _aware(times[0].as_py()) if size else None
    nows = _per_row_times(times) if size else None
    kinds = {
        events_topic: _Kind("event", validate_event, EVENT_KEY_PREFIX + "{event_id}"),
        transactions_topic: _Kind(
            "transaction", validate_transaction, TRANSACTION_KEY_PREFIX + "{transaction_id}"
        ),
    }
    topics = batch.column("topic").to_pylist()
    values = batch.column("value").to_pylist()
    parsed: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in RECORD_STRUCTS}
    positions: dict[str, list[int | None]] = {name: [None] * size for name, _ in RECORD_STRUCTS}
    reasons: list[str | None] = [None] * size
    details: list[str | None] = [None] * size
    event_types: list[str | None] = [None] * size
    dedup_keys: list[str | None] = [None] * size
    for i, topic in enumerate(topics):
        kind = kinds.get(topic)
        if kind is None:
            reasons[i], details[i] = UNKNOWN_TOPIC, str(topic)
            continue
        now = batch_time if nows is None else nows[i]
        result = kind.validate(values[i] or b"", now, limits=limits)
        if not result.ok:
            reasons[i], details[i] = str(result.reason), result.detail
            event_types[i] = _event_type(values[i]) if kind.struct == "event" else None
            continue
        record: dict[str, Any] = result.event  # type: ignore[assignment]
        positions[kind.struct][i] = len(parsed[kind.struct])
        parsed[kind.struct].append(record)
        event_types[i] = record.get("event_type")
        dedup_keys[i] = kind.dedup_key.format_map(record)
    accepted = pa.array([r is None for r in reasons], pa.bool_())
    structs = {
        name: _scatter(_records_array(parsed[name], schema.field(name).type), positions[name])
        for name, _ in RECORD_STRUCTS
    }
    event_time = pc.coalesce(
        *(pc.struct_field(structs[name], EVENT_TIME_FIELD) for name, _ in RECORD_STRUCTS)
    )
    kept = pc.invert(accepted)
    columns = {
        "key": pc.if_else(kept, batch.column("key"), pa.nulls(size, pa.binary())),
        "value": pc.if_else(kept, batch.column("value"), pa.nulls(size, pa.binary())),
        "topic": batch.column("topic"),
        "partition": batch.column("partition"),
        "offset": batch.column("offset"),
        "batch_time": pc.cast(times, _TIMESTAMP),
        **structs,
        "event_type": pa.array(event_types, pa.string()),
        "event_time": event_time,
        "reason": pa.array(reasons, pa.string()),
        "detail": pa.array(details, pa.string()),
        "accepted": accepted,
        "dedup_key": pc.coalesce(pa.array(dedup_keys, pa.string()), _coordinates(batch)),
    }
    return pa.RecordBatch.from_arrays(
        [pc.cast(columns[f.name], f.type) for f in schema], schema=schema
    )


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _per_row_times(times: pa.Array) -> list[datetime | None] | None:
    """Each row's `batch_time`, or None when one value holds for the whole batch."""
    bounds = pc.min_max(times)
    if bounds["min"] == bounds["max"] and times.null_count == 0:
        return None
    return [_aware(t) for t in times.to_pylist()]


def _coordinates(batch: pa.RecordBatch) -> pa.Array:
    """`<topic>/<partition>/<offset>` per row."""
    parts = [pc.cast(batch.column(name), pa.string()) for name in ("topic", "partition", "offset")]
    return pc.binary_join_element_wise(*parts, "/")


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event_type(raw: bytes | None) -> str | None:
    """The event type a rejected record names, when it is readable (for dead-letter counts)."""
    try:
        parsed = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    value = parsed.get("event_type") if type(parsed) is dict else None
    return value if type(value) is str else None


def classify_records(
    raw: DataFrame,
    *,
    events_topic: str,
    transactions_topic: str,
    limits: Limits = DEFAULT_LIMITS,
) -> DataFrame:
    """Kafka rows (key, value, topic, partition, offset, ...) -> `classified_schema()` rows.

    Unlike the batch layer, the speed layer keeps every record's original key and value: the
    driver may still judge an accepted record late (`mark_late`) and dead-letter its bytes.
    """

    def classify(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            out = classify_batch(
                batch,
                events_topic=events_topic,
                transactions_topic=transactions_topic,
                limits=limits,
            )
            columns = [
                batch.column(f.name) if f.name in _BYTES else out.column(f.name) for f in out.schema
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=out.schema)

    with_time = raw.withColumn("batch_time", F.current_timestamp()).select(*_RAW_COLUMNS)
    return with_time.mapInArrow(classify, classified_schema())


def mark_late(
    classified: pa.Table, newest_before: datetime | None, lateness: timedelta
) -> tuple[pa.Table, datetime | None]:
    """Accepted records whose event time is below the event-time watermark, dead-lettered `late`.

    The watermark is the newest event time of the micro-batches before this one
    (`newest_before`; None: nothing is late) minus `lateness`. Returns the table and the newest
    event time after this batch (its accepted records included), the next batch's
    `newest_before`.
    """
    accepted, times = classified.column("accepted"), classified.column("event_time")
    here = _aware(pc.max(pc.filter(times, accepted)).as_py())
    known = [t for t in (newest_before, here) if t is not None]
    newest = max(known) if known else None
    if newest_before is None:
        return classified, newest
    floor = pa.scalar(newest_before - lateness, times.type)
    late = pc.fill_null(pc.and_(accepted, pc.less(times, floor)), False)
    if not pc.any(late).as_py():
        return classified, newest
    detail = (
        f"event time more than {lateness.total_seconds():g}s before the newest event time seen "
        f"({_stamp(newest_before)})"
    )
    changed = {
        "reason": pc.if_else(late, pa.scalar(LATE), classified.column("reason")),
        "detail": pc.if_else(late, pa.scalar(detail), classified.column("detail")),
        "accepted": pc.and_(accepted, pc.invert(late)),
    }
    for name, column in changed.items():
        classified = classified.set_column(classified.schema.get_field_index(name), name, column)
    return classified, newest
