"""The raw tables: one per Kafka topic, each record's original bytes and coordinates.

Raw keeps bytes, never parsed fields, so a contract change never needs a raw table to change.
Two derived columns serve partitioning and pruning: the UTC day of the Kafka timestamp (the
partition: the day a record arrived never changes, so a day's partition is complete once the
archiver passes midnight) and the event time where the record parses (min/max statistics let
the batch layer prune files by event time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lambdapipe.ingest.cdc import topic as cdc_topic
from lambdapipe.settings import Settings

# How the event time is read from a record's value: an ISO-8601 string at `$.timestamp`
# (events, transactions and the dead letters' original bytes), or Debezium's source commit
# time in epoch milliseconds (CDC).
EventTime = Literal["iso_timestamp", "debezium_ts_ms"]

# (name, Spark SQL type, what it is); every column is optional: Kafka's own columns are
# nullable in Spark and Iceberg refuses to write nullable values into required columns.
RAW_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("topic", "STRING", "Kafka topic"),
    ("partition", "INT", "Kafka partition"),
    ("offset", "BIGINT", "offset in the partition"),
    ("kafka_timestamp", "TIMESTAMP", "Kafka record timestamp"),
    ("timestamp_type", "INT", "0: CreateTime, 1: LogAppendTime"),
    ("key", "BINARY", "original key bytes"),
    ("value", "BINARY", "original value bytes (null: a tombstone)"),
    ("headers", "ARRAY<STRUCT<key: STRING, value: BINARY>>", "original headers, in order"),
    ("kafka_date", "DATE", "UTC day of kafka_timestamp (the partition)"),
    ("event_time", "TIMESTAMP", "event time where the value parses, else null"),
)
PARTITION_COLUMN: Final = "kafka_date"

# Every micro-batch is a commit: keep the metadata files of old versions bounded.
TABLE_PROPERTIES: Final[dict[str, str]] = {
    "format-version": "2",
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    # small dictionaries: the unique key and value bytes (and offsets, timestamps) give up on
    # theirs after a few hundred values instead of filling 2 MiB first; topic, partition and
    # day keep theirs. Iceberg 1.10 has no per-column dictionary switch (docs/lake.md).
    "write.parquet.dict-size-bytes": "16384",
    "write.spark.fanout.enabled": "true",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    "commit.retry.num-retries": "10",
}


@dataclass(frozen=True)
class RawTable:
    """One raw table and the topic it archives."""

    name: str
    topic: str
    event_time: EventTime
    purpose: str


def raw_tables(settings: Settings) -> list[RawTable]:
    """Every raw table, in the order the archiver starts them."""
    k = settings.kafka
    return [
        RawTable("events", k.events_topic, "iso_timestamp", "shop events"),
        RawTable("transactions", k.transactions_topic, "iso_timestamp", "transactions"),
        RawTable("dead_letters", k.dlq_topic, "iso_timestamp", "rejected records, with reasons"),
        RawTable(
            "users_changes", cdc_topic(settings, "users"), "debezium_ts_ms", "users CDC history"
        ),
        RawTable(
            "products_changes",
            cdc_topic(settings, "products"),
            "debezium_ts_ms",
            "products CDC history",
        ),
    ]


def qualified(settings: Settings, table: RawTable | str) -> str:
    """`<catalog>.<namespace>.<table>` for Spark SQL."""
    name = table if isinstance(table, str) else table.name
    return f"{settings.lake.catalog}.{settings.lake.namespace}.{name}"


def create_table_sql(settings: Settings, table: RawTable) -> str:
    """The idempotent DDL of one raw table."""
    columns = ",\n  ".join(f"`{name}` {kind} COMMENT '{doc}'" for name, kind, doc in RAW_COLUMNS)
    properties = ", ".join(f"'{k}' = '{v}'" for k, v in TABLE_PROPERTIES.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(settings, table)} (\n  {columns}\n)\n"
        f"USING iceberg\nPARTITIONED BY ({PARTITION_COLUMN})\n"
        f"COMMENT 'raw {table.purpose} from Kafka topic {table.topic}'\n"
        f"TBLPROPERTIES ({properties})"
    )
