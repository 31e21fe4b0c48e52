"""The curated tables' rows, from the classified, deduplicated records of the window.

Curated events and transactions have the serving store's columns (the contracts' fields, typed),
the tier as of the event time, the product's name and category as of then, and the record's
Kafka coordinates (lineage back to the raw table).
"""

from __future__ import annotations

from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lambdapipe.batch.enrich import enrich_with_product_as_of, enrich_with_tier_as_of
from lambdapipe.speed.records import record_struct

LINEAGE: Final = (("partition", "source_partition"), ("offset", "source_offset"))


def _lineage() -> list[Column]:
    """Where the record lies in the raw table (and Kafka)."""
    return [F.col(a).alias(b) for a, b in LINEAGE] + [F.col("kafka_timestamp")]


def _kept(classified: DataFrame, topic: str) -> DataFrame:
    return classified.where(F.col("accepted") & ~F.col("is_repeat") & (F.col("topic") == topic))


def window_events(classified: DataFrame, topic: str) -> DataFrame:
    """Every accepted, first-copy event of the window (neighbouring days' included: sessions)."""
    fields = [f.name for f in record_struct("user_event")]
    return _kept(classified, topic).select(
        *[F.col(f"event.{name}").alias(name) for name in fields], "in_day", *_lineage()
    )


def curated_events(window_rows: DataFrame, users: DataFrame, products: DataFrame) -> DataFrame:
    """The day's events (`window_events` rows in the day), enriched as of their event time."""
    rows = window_rows.where("in_day").drop("in_day")
    return enrich_with_product_as_of(enrich_with_tier_as_of(rows, users), products)


def curated_transactions(
    classified: DataFrame, topic: str, users: DataFrame, products: DataFrame
) -> DataFrame:
    """The day's transactions, first copies only, enriched as of their event time."""
    fields = [f.name for f in record_struct("transaction")]
    rows = (
        _kept(classified, topic)
        .where("in_day")
        .select(*[F.col(f"transaction.{name}").alias(name) for name in fields], *_lineage())
    )
    return enrich_with_product_as_of(enrich_with_tier_as_of(rows, users), products)


def curated_dead_letters(classified: DataFrame) -> DataFrame:
    """The day's rejected records: reason, detail, original bytes, where they came from."""
    return classified.where(~F.col("accepted") & F.col("in_day")).select(
        F.col("record_day").alias("event_day"),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        "kafka_timestamp",
        F.col("raw_event_time").alias("event_time"),
        "reason",
        F.coalesce(F.col("detail"), F.lit("")).alias("detail"),
        "event_type",
        "key",
        F.col("value").alias("raw"),
    )
