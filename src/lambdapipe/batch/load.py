"""The warehouse step: each day's curated rows into RAW (the warehouse's contract), then dbt.

RAW's columns are the warehouse's (`lambdapipe.warehouse.raw`, docs/warehouse.md): this module
only selects them from the curated tables, with the Iceberg data file each row was read from
(`_file`) as `file_name`, and hands them to `Warehouse.load_raw`, which replaces the day.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lambdapipe.batch import tables
from lambdapipe.batch.history import catalogue_as_of
from lambdapipe.batch.window import DayWindow
from lambdapipe.settings import Settings
from lambdapipe.warehouse.base import Warehouse
from lambdapipe.warehouse.raw import FILE_NAME, arrow_schema

# RAW table -> the curated table it is loaded from
SOURCES = {
    "user_events": tables.EVENTS,
    "transactions": tables.TRANSACTIONS,
    "dead_letters": tables.DEAD_LETTERS,
}


def raw_selection(rows: DataFrame, raw: str) -> DataFrame:
    """The RAW table's data columns (those present) of curated `rows`, plus `file_name`."""
    wanted = [n for n in arrow_schema(raw).names if n in rows.columns or n == FILE_NAME]
    return rows.select(*[F.col("_file").alias(n) if n == FILE_NAME else F.col(n) for n in wanted])


def load_day(
    spark: SparkSession,
    settings: Settings,
    warehouse: Warehouse,
    day: date,
    batch_id: str,
    products_changes: DataFrame,
) -> dict[str, int]:
    """Replace `day` in every RAW table; returns the rows loaded per table."""
    loaded = {}
    for raw, table in SOURCES.items():
        curated = spark.table(tables.qualified(settings, table)).select("*", "_file")
        rows = raw_selection(curated.where(tables.day_predicate(table, day)), raw).toArrow()
        loaded[raw] = warehouse.load_raw(raw, rows, batch_id, None, day)
    catalogue = catalogue_as_of(products_changes, DayWindow(day).end).toArrow()
    loaded["products"] = warehouse.load_raw("products", catalogue, batch_id, None, day)
    return loaded
