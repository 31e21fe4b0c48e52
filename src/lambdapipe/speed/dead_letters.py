"""Rejected and late records as dead letters: the rows of `dead_letters_realtime` and the DLQ.

A dead letter keeps the original bytes and says where they came from (topic, partition,
offset), why (a contracts `Reason` or `late`), and when (the micro-batch time).
"""

from __future__ import annotations

from typing import Final

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Headers of a record on the Kafka dead-letter topic; the value and key are the original bytes.
DLQ_HEADERS: Final = (
    "reason",
    "detail",
    "source_topic",
    "source_partition",
    "source_offset",
    "dead_lettered_at",
    "event_type",
)


def route_dead_letters(classified: DataFrame) -> DataFrame:
    """The records that were not accepted, as dead-letter rows (plus the original key)."""
    return classified.where(~F.col("accepted")).select(
        F.col("batch_time").alias("dead_lettered_at"),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.col("reason"),
        F.col("event.event_type").alias("event_type"),
        F.coalesce(F.col("detail"), F.lit("")).alias("detail"),
        F.col("value").alias("raw"),
        F.col("key").alias("key"),
    )


def accepted(classified: DataFrame, topic: str) -> DataFrame:
    """The accepted records of one topic."""
    return classified.where(F.col("accepted") & (F.col("topic") == topic))
