"""The warehouse step: each day's curated rows into RAW (the warehouse's contract), then dbt.

RAW's columns are the warehouse's (`lambdapipe.warehouse.raw`, docs/warehouse.md): this module
only selects them from the curated tables and hands them to `Warehouse.load_raw`, which
replaces the day. The curated rows are read with pyiceberg data file by data file (the file is
each row's `file_name`) and streamed: a day of millions of events is never held at once, nor
collected through Spark's driver.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.io.pyarrow import ArrowScan
from pyspark.sql import DataFrame

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


def raw_columns(curated: Iterable[str], raw: str) -> list[str]:
    """The RAW table's data columns that a curated table has (`file_name` is the data file)."""
    present = set(curated)
    return [n for n in arrow_schema(raw).names if n in present and n != FILE_NAME]


def day_filter(table: tables.CuratedTable, day: date) -> BooleanExpression:
    """`tables.day_predicate` as a pyiceberg expression."""
    column = str(table.day_column)
    if table.day_is_date:
        return EqualTo(term=column, value=day.isoformat())
    start = datetime.combine(day, time()).isoformat() + "+00:00"
    end = datetime.combine(day + timedelta(days=1), time()).isoformat() + "+00:00"
    return And(GreaterThanOrEqual(term=column, value=start), LessThan(term=column, value=end))


def curated_day(
    catalog: Catalog, settings: Settings, table: tables.CuratedTable, day: date, raw: str
) -> pa.RecordBatchReader:
    """`day`'s rows of a curated table as RAW `raw` takes them, one data file at a time."""
    iceberg = catalog.load_table(f"{settings.lake.curated_namespace}.{table.name}")
    columns = raw_columns((f.name for f in iceberg.schema().fields), raw)
    scan = iceberg.scan(row_filter=day_filter(table, day), selected_fields=tuple(columns))
    reader = ArrowScan(iceberg.metadata, iceberg.io, scan.projection(), scan.row_filter)

    def batches() -> Iterator[pa.RecordBatch]:
        for task in scan.plan_files():
            path = pa.scalar(task.file.file_path, pa.string())
            for batch in reader.to_record_batches([task]):
                yield batch.append_column(FILE_NAME, pa.repeat(path, batch.num_rows))

    stream = batches()
    first = next(stream, None)
    if first is None:
        contract = arrow_schema(raw)
        return pa.RecordBatchReader.from_batches(
            pa.schema([*(contract.field(n) for n in columns), contract.field(FILE_NAME)]), []
        )
    return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], stream))


def load_day(
    settings: Settings,
    warehouse: Warehouse,
    day: date,
    batch_id: str,
    products_changes: DataFrame,
) -> dict[str, int]:
    """Replace `day` in every RAW table; returns the rows loaded per table."""
    from lambdapipe.resources import Resources

    loaded = {}
    with Resources(settings).lake_catalog() as catalog:
        for raw, table in SOURCES.items():
            rows = curated_day(catalog, settings, table, day, raw)
            loaded[raw] = warehouse.load_raw(raw, rows, batch_id, None, day)
    catalogue = catalogue_as_of(products_changes, DayWindow(day).end).toArrow()
    loaded["products"] = warehouse.load_raw("products", catalogue, batch_id, None, day)
    return loaded
