"""Speed-layer test helpers: shop records and Kafka-like rows (Spark: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

KAFKA_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
    ]
)
USER = "0b6f4c1e-1f0e-4a51-9d43-0d5a8f2f7c11"
SESSION = "6a1e2f4b-90e8-4a77-8d2c-3c7d1b9f0e21"


def stamp(moment: datetime) -> str:
    """The schemas' timestamp format: milliseconds, Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def event(
    event_type: str = "page_view",
    at: datetime | None = None,
    event_id: str = "1c9d3f0a-2b4e-4c6d-8e0f-1a2b3c4d5e6f",
    user_id: str = USER,
    session_id: str = SESSION,
    **extra: Any,
) -> dict[str, Any]:
    """A valid event (page_view by default) `at` (default: a minute ago)."""
    record: dict[str, Any] = {
        "event_id": event_id,
        "user_id": user_id,
        "session_id": session_id,
        "event_type": event_type,
        "timestamp": stamp(at or datetime.now(UTC) - timedelta(minutes=1)),
        "device_type": "mobile",
        "browser": "firefox",
        "ip_address": "10.1.2.3",
    }
    if event_type == "page_view":
        record.update(page_url="https://shop.example.com/", referrer="https://www.google.com/")
    record.update(extra)
    return record


def transaction(at: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A valid completed transaction."""
    record: dict[str, Any] = {
        "transaction_id": "7d2c1b0a-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
        "user_id": USER,
        "session_id": SESSION,
        "product_id": "2f3e4d5c-6b7a-4988-8776-655443322110",
        "quantity": 2,
        "unit_price": "10.00",
        "discount_amount": "0.00",
        "tax_amount": "1.60",
        "total_amount": "21.60",
        "currency": "USD",
        "payment_method": "paypal",
        "status": "completed",
        "timestamp": stamp(at or datetime.now(UTC) - timedelta(minutes=1)),
    }
    record.update(extra)
    return record


def kafka_rows(
    spark: SparkSession,
    records: list[tuple[str, bytes | dict[str, Any]]],
    first_offset: int = 0,
) -> DataFrame:
    """Kafka-source-shaped rows from (topic, value) pairs; offsets are the list positions."""
    rows = []
    for offset, (topic, value) in enumerate(records, start=first_offset):
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        rows.append((USER.encode(), raw, topic, 0, offset, datetime.now(UTC)))
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def run_stream(
    spark: SparkSession,
    folder: Path,
    batches: list[list[tuple[str, bytes | dict[str, Any]]]],
    transform: Callable[[DataFrame], DataFrame],
) -> list[list[Row]]:
    """Feed each batch of records as micro-batches through `transform`; the rows out of each.

    A file source over Parquet files stands in for Kafka: the same columns, real streaming
    state and watermarks. Batch i's offsets continue from the previous batches'.
    """
    source, checkpoint = folder / "source", folder / "checkpoint"
    out: dict[int, list[Row]] = {}

    def collect(batch: DataFrame, batch_id: int) -> None:
        out[batch_id] = batch.collect()

    first = 0
    query = None
    per_input: list[list[Row]] = []
    taken: set[int] = set()
    try:
        for records in batches:
            rows = kafka_rows(spark, records, first_offset=first)
            first += len(records)
            rows.coalesce(1).write.mode("append").parquet(str(source))
            if query is None:
                stream = spark.readStream.schema(KAFKA_SCHEMA).parquet(str(source))
                query = (
                    transform(stream)
                    .writeStream.foreachBatch(collect)
                    .option("checkpointLocation", str(checkpoint))
                    .start()
                )
            query.processAllAvailable()
            fresh = sorted(set(out) - taken)
            taken.update(fresh)
            per_input.append([row for i in fresh for row in out[i]])
    finally:
        if query is not None:
            query.stop()
    return per_input
