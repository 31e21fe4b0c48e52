"""Dimension histories as SCD type 2 tables, rebuilt from the Debezium change records in the lake.

Each change (`op` r, c, u, d; docs/dimensions.md) is an image of a row at its commit time
(`source.ts_ms`, the raw table's `event_time`). Versions are ordered by `source.lsn` (then by
Kafka coordinates); exact replays after a Connect crash (same lsn and key) count once; a change
that leaves the tracked attributes as they were opens no new version. A version is valid on
`[valid_from, valid_to)`; the current one has `valid_to` null. A delete closes the last version.

The first version of a row is valid from the beginning of time (`BEGINNING`): the dimensions are
loaded (and snapshotted by Debezium) after the traffic they describe may have started, and what
a row first said is the best knowledge of what it was before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

BEGINNING: Final = datetime(1970, 1, 1, tzinfo=UTC)
USER_ATTRIBUTES: Final = ("tier",)
PRODUCT_ATTRIBUTES: Final = ("name", "category")


def _change_schema(key: str, attributes: tuple[str, ...]) -> StructType:
    image = StructType([StructField(n, StringType()) for n in (key, *attributes)])
    return StructType(
        [
            StructField("op", StringType()),
            StructField("before", image),
            StructField("after", image),
            StructField("source", StructType([StructField("lsn", LongType())])),
        ]
    )


def _same(left: Column, right: Column) -> Column:
    return left.eqNullSafe(right)


def history(changes: DataFrame, key: str, attributes: tuple[str, ...]) -> DataFrame:
    """Raw change rows (lake columns) -> (key, *attributes, valid_from, valid_to, is_current,
    recorded_at, lsn), one row per version."""
    parsed = changes.where(F.col("value").isNotNull()).select(
        F.from_json(F.col("value").cast("string"), _change_schema(key, attributes)).alias("c"),
        F.col("event_time").alias("recorded_at"),
        "partition",
        "offset",
    )
    deleted = (F.col("c.op") == "d") | F.col("c.after").isNull()
    images = parsed.select(
        F.coalesce(F.col(f"c.after.{key}"), F.col(f"c.before.{key}")).alias(key),
        *[F.when(~deleted, F.col(f"c.after.{a}")).alias(a) for a in attributes],
        deleted.alias("deleted"),
        F.col("c.source.lsn").alias("lsn"),
        "recorded_at",
        "partition",
        "offset",
    ).where(F.col(key).isNotNull())
    once = images.dropDuplicates([key, "lsn", "deleted"])
    order = Window.partitionBy(key).orderBy("lsn", "partition", "offset")
    previous = [F.lag(c).over(order) for c in (*attributes, "deleted")]
    changed = F.lit(False)
    for column, before in zip((*attributes, "deleted"), previous, strict=True):
        changed = changed | ~_same(F.col(column), before)
    versions = (
        once.withColumn("first", F.row_number().over(order) == 1)
        .withColumn("opens", F.col("first") | changed)
        .where("opens")
    )
    valid_from = F.when(F.col("first"), F.lit(BEGINNING)).otherwise(F.col("recorded_at"))
    span = Window.partitionBy(key).orderBy("lsn", "partition", "offset")
    dated = versions.withColumn("valid_from", valid_from).withColumn(
        "valid_to", F.lead("recorded_at").over(span)
    )
    return dated.where(~F.col("deleted")).select(
        key,
        *attributes,
        "valid_from",
        "valid_to",
        F.col("valid_to").isNull().alias("is_current"),
        "recorded_at",
        "lsn",
    )


def users_history(changes: DataFrame) -> DataFrame:
    """The users' tier history (`raw.users_changes` rows in)."""
    return history(changes, "user_id", USER_ATTRIBUTES)


def products_history(changes: DataFrame) -> DataFrame:
    """The products' name and category history (`raw.products_changes` rows in)."""
    return history(changes, "product_id", PRODUCT_ATTRIBUTES)


# The product columns of the catalogue snapshot (RAW `products`), as Debezium writes them.
CATALOGUE: Final = (
    ("product_id", "string"),
    ("name", "string"),
    ("category", "string"),
    ("subcategory", "string"),
    ("brand", "string"),
    ("price", "decimal(10,2)"),
    ("cost", "decimal(10,2)"),
    ("is_active", "boolean"),
    ("created_at", "timestamp"),
    ("updated_at", "timestamp"),
)


def catalogue_as_of(changes: DataFrame, moment: datetime) -> DataFrame:
    """Every product as it was at `moment` (the last image committed before it, else its first
    image: the beginning-of-time rule above); products deleted by then are absent."""
    image = StructType([StructField(n, StringType()) for n, _ in CATALOGUE])
    schema = StructType(
        [
            StructField("op", StringType()),
            StructField("before", image),
            StructField("after", image),
            StructField("source", StructType([StructField("lsn", LongType())])),
        ]
    )
    parsed = changes.where(F.col("value").isNotNull()).select(
        F.from_json(F.col("value").cast("string"), schema).alias("c"),
        F.col("event_time").alias("recorded_at"),
        "partition",
        "offset",
    )
    key = F.coalesce(F.col("c.after.product_id"), F.col("c.before.product_id"))
    rows = parsed.select(
        key.alias("_key"),
        F.col("c.after").alias("after"),
        ((F.col("c.op") == "d") | F.col("c.after").isNull()).alias("deleted"),
        F.col("c.source.lsn").alias("lsn"),
        "recorded_at",
        "partition",
        "offset",
    ).where(F.col("_key").isNotNull())
    order = Window.partitionBy("_key").orderBy("lsn", "partition", "offset")
    ranked = rows.withColumn("_n", F.row_number().over(order))
    known = ranked.where((F.col("recorded_at") < F.lit(moment)) | (F.col("_n") == 1))
    latest = Window.partitionBy("_key").orderBy(
        F.desc("lsn"), F.desc("partition"), F.desc("offset")
    )
    last = known.withColumn("_last", F.row_number().over(latest) == 1).where("_last")
    return last.where(~F.col("deleted")).select(
        *[
            (
                F.to_timestamp(F.col(f"after.{n}"))
                if kind == "timestamp"
                else F.col(f"after.{n}").cast(kind)
            ).alias(n)
            for n, kind in CATALOGUE
        ]
    )
