"""The curated tables in the lake and how one day replaces its own rows in them.

Each table is created from the first DataFrame written to it (columns optional; the lake's
schema evolution may have added more, which stay null in our rows), partitioned by day, and a
day is written by dynamic partition overwrite: one Iceberg commit that replaces exactly the
day's partition. A day whose output is empty deletes its partition instead (an overwrite of
nothing would leave the previous run's rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lambdapipe.settings import Settings

_PROPERTIES: Final = {
    "format-version": "2",
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    # one day per write: every task writes its own file, no shuffle to cluster the partition
    "write.distribution-mode": "none",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}


@dataclass(frozen=True)
class CuratedTable:
    """One curated table: its name, partition transform and the column that places a day."""

    name: str
    partition: str  # Iceberg transform in Spark SQL, e.g. days(timestamp)
    day_column: str | None  # a timestamp (the day is its UTC date) or a date column
    day_is_date: bool = False


EVENTS: Final = CuratedTable("events", "days(timestamp)", "timestamp")
TRANSACTIONS: Final = CuratedTable("transactions", "days(timestamp)", "timestamp")
SESSIONS: Final = CuratedTable("sessions", "days(session_start)", "session_start")
DEAD_LETTERS: Final = CuratedTable("dead_letters", "event_day", "event_day", day_is_date=True)
# The whole history, rebuilt each run: not a day's table.
USERS_HISTORY: Final = CuratedTable("users_history", "", None)
DAY_TABLES: Final = (EVENTS, TRANSACTIONS, SESSIONS, DEAD_LETTERS)


def qualified(settings: Settings, table: CuratedTable) -> str:
    lake = settings.lake
    return f"{lake.catalog}.{lake.curated_namespace}.{table.name}"


def day_predicate(table: CuratedTable, day: date) -> str:
    """SQL selecting `day`'s rows of `table` (aligned with its partitions)."""
    column = f"`{table.day_column}`"
    if table.day_is_date:
        return f"{column} = DATE '{day.isoformat()}'"
    following = day + timedelta(days=1)
    return (
        f"{column} >= TIMESTAMP '{day.isoformat()} 00:00:00 UTC' "
        f"AND {column} < TIMESTAMP '{following.isoformat()} 00:00:00 UTC'"
    )


def _ddl(schema: StructType) -> str:
    return ",\n  ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields)


def ensure(
    spark: SparkSession, settings: Settings, table: CuratedTable, schema: StructType
) -> None:
    """Create the table, or add the columns it lacks (an additive schema change)."""
    lake = settings.lake
    name = qualified(settings, table)
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {lake.catalog}.{lake.curated_namespace}")
    properties = ", ".join(f"'{k}' = '{v}'" for k, v in _PROPERTIES.items())
    partitioned = f"PARTITIONED BY ({table.partition})\n" if table.partition else ""
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {name} (\n  {_ddl(schema)}\n) USING iceberg\n"
        f"{partitioned}TBLPROPERTIES ({properties})"
    )
    known = {f.name for f in spark.table(name).schema.fields}
    missing = StructType([f for f in schema.fields if f.name not in known])
    if missing.fields:
        spark.sql(f"ALTER TABLE {name} ADD COLUMNS ({_ddl(missing)})")


def aligned(
    spark: SparkSession, settings: Settings, table: CuratedTable, rows: DataFrame
) -> DataFrame:
    """`rows` with the table's columns in its order (null for columns added by others)."""
    target = spark.table(qualified(settings, table)).schema
    present = set(rows.columns)
    return rows.select(
        *[
            F.col(f.name) if f.name in present else F.lit(None).cast(f.dataType).alias(f.name)
            for f in target.fields
        ]
    )


def replace_day(
    spark: SparkSession,
    settings: Settings,
    table: CuratedTable,
    rows: DataFrame,
    day: date,
    expected_rows: int,
) -> None:
    """Make `rows` the whole of `day` in `table`, in one commit."""
    ensure(spark, settings, table, rows.schema)
    name = qualified(settings, table)
    if expected_rows == 0:
        spark.sql(f"DELETE FROM {name} WHERE {day_predicate(table, day)}")  # noqa: S608
        return
    aligned(spark, settings, table, rows).writeTo(name).overwritePartitions()


def replace_all(
    spark: SparkSession, settings: Settings, table: CuratedTable, rows: DataFrame
) -> None:
    """Make `rows` the whole table, in one commit."""
    ensure(spark, settings, table, rows.schema)
    aligned(spark, settings, table, rows).writeTo(qualified(settings, table)).overwrite(F.lit(True))


def day_rows(spark: SparkSession, settings: Settings, table: CuratedTable, day: date) -> DataFrame:
    """`day`'s rows of `table`, as written."""
    return spark.table(qualified(settings, table)).where(day_predicate(table, day))
