"""Enrichment with dimension state: the user's tier at processing time, `unknown` if absent."""

from __future__ import annotations

from typing import Final

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

UNKNOWN_TIER: Final = "unknown"


def enrich_with_tier(rows: DataFrame, tiers: DataFrame) -> DataFrame:
    """`rows` (with `user_id`) plus `user_tier` from `tiers` (user_id, tier); never drops a row."""
    lookup = F.broadcast(tiers.select(F.col("user_id").alias("_tier_user"), F.col("tier")))
    joined = rows.join(lookup, rows["user_id"] == lookup["_tier_user"], "left")
    return joined.withColumn("user_tier", F.coalesce(F.col("tier"), F.lit(UNKNOWN_TIER))).drop(
        "_tier_user", "tier"
    )
