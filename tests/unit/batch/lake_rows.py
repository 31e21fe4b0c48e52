"""Batch-layer test helpers: raw lake rows built by the archiver's own transform."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lambdapipe.batch.day import Topics
from lambdapipe.batch.window import DayWindow
from lambdapipe.lake.archive import raw_records
from lambdapipe.lake.tables import EventTime

TOPICS = Topics("events", "transactions")
DAY = date(2026, 3, 2)
WINDOW = DayWindow(DAY)

KAFKA_SCHEMA = StructType(
    [
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField(
            "headers",
            ArrayType(
                StructType([StructField("key", StringType()), StructField("value", BinaryType())])
            ),
        ),
    ]
)


def at(text: str) -> datetime:
    """`2026-03-02T12:00:00` (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Record:
    """One Kafka record as it reached the lake."""

    topic: str
    value: bytes | dict[str, Any] | None
    arrived: datetime
    partition: int = 0
    offset: int | None = None
    key: bytes | None = None


def raw_rows(
    spark: SparkSession, records: list[Record], kind: EventTime = "iso_timestamp"
) -> DataFrame:
    """Lake rows (raw table columns) of `records`; offsets count up per partition if not given."""
    next_offset: dict[tuple[str, int], int] = {}
    rows = []
    for r in records:
        slot = (r.topic, r.partition)
        offset = r.offset if r.offset is not None else next_offset.get(slot, 0)
        next_offset[slot] = offset + 1
        value = orjson.dumps(r.value) if isinstance(r.value, dict) else r.value
        rows.append((r.topic, r.partition, offset, r.arrived, 0, r.key, value, []))
    return raw_records(spark.createDataFrame(rows, KAFKA_SCHEMA), kind)


def debezium(
    op: str, user_id: str, tier: str | None, ts: datetime, lsn: int, before_tier: str | None = None
) -> dict[str, Any]:
    """A Debezium change of `users` (JSON without schema envelope, as the connector writes)."""
    after = None if op == "d" else {"user_id": user_id, "tier": tier}
    before = {"user_id": user_id, "tier": before_tier} if op in ("u", "d") else None
    millis = int(ts.timestamp() * 1000)
    return {
        "before": before,
        "after": after,
        "source": {"ts_ms": millis, "lsn": lsn, "table": "users"},
        "op": op,
        "ts_ms": millis + 5,
    }


def empty_history(spark: SparkSession, key: str, attributes: tuple[str, ...]) -> DataFrame:
    columns = ", ".join(f"{a} string" for a in attributes)
    return spark.createDataFrame(
        [],
        f"{key} string, {columns}, valid_from timestamp, valid_to timestamp, "
        "is_current boolean, recorded_at timestamp, lsn bigint",
    )
