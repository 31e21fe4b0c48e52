"""Exact deduplication over a whole day: one copy per event_id / transaction_id, however far apart.

The copy kept is the first by Kafka coordinates (partition, then offset): a repeat of a key is
produced with the same key (user_id), so it lands in the same partition, after the original.
Dead letters carry unique keys (their coordinates) and are never repeats.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def mark_repeats(classified: DataFrame) -> DataFrame:
    """Classified rows plus `is_repeat`: true for every copy of a `dedup_key` after the first."""
    first_by_coordinates = Window.partitionBy("dedup_key").orderBy("partition", "offset")
    return classified.withColumn("is_repeat", F.row_number().over(first_by_coordinates) > 1)
