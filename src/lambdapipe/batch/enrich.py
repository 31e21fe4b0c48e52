"""Enrichment as of the event time: the tier the user had, the name the product had, then.

A range join on the SCD2 histories (`history.py`): equality on the key, `valid_from <= t <
valid_to`. Versions of one key never overlap, so a row matches at most one version; a row
matching none keeps every column, with tier `unknown` (never dropped).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lambdapipe.speed.enrich import UNKNOWN_TIER


def _as_of(
    rows: DataFrame, history: DataFrame, key: str, at: str, columns: dict[str, str]
) -> DataFrame:
    h = history.select(
        F.col(key).alias("_key"),
        "valid_from",
        "valid_to",
        *[F.col(source).alias(f"_h_{target}") for source, target in columns.items()],
    )
    valid = (
        (F.col(key) == F.col("_key"))
        & (F.col(at) >= F.col("valid_from"))
        & (F.col("valid_to").isNull() | (F.col(at) < F.col("valid_to")))
    )
    joined = rows.join(F.broadcast(h), valid, "left")
    return joined.drop("_key", "valid_from", "valid_to").withColumnsRenamed(
        {f"_h_{target}": target for target in columns.values()}
    )


def enrich_with_tier_as_of(rows: DataFrame, users: DataFrame, at: str = "timestamp") -> DataFrame:
    """`rows` (with user_id and `at`) plus `user_tier` as of `at`; `unknown` without a version."""
    enriched = _as_of(rows, users, "user_id", at, {"tier": "user_tier"})
    return enriched.withColumn("user_tier", F.coalesce(F.col("user_tier"), F.lit(UNKNOWN_TIER)))


def enrich_with_product_as_of(
    rows: DataFrame, products: DataFrame, at: str = "timestamp"
) -> DataFrame:
    """`rows` (with product_id, maybe null, and `at`) plus `product_name`, `product_category`."""
    return _as_of(
        rows, products, "product_id", at, {"name": "product_name", "category": "product_category"}
    )
