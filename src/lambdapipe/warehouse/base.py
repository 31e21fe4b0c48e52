"""The `Warehouse` interface: load RAW idempotently per (table, day), query, close."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Self

import pyarrow as pa
import pyarrow.compute as pc

from lambdapipe.errors import Problem
from lambdapipe.warehouse.raw import (
    ARROW_TYPES,
    BATCH_DAY,
    BATCH_ID,
    FILE_NAME,
    LOADED_AT,
    RAW_TABLES,
    SCHEMA,
    arrow_schema,
    raw_table,
    uuid_strings,
)


class Warehouse(ABC):
    """A warehouse with the RAW schema; STAGING and MARTS are dbt's (`transform.py`)."""

    dialect: str

    @abstractmethod
    def connect(self) -> None:
        """Open the connection and create the RAW schema and tables where missing."""

    @abstractmethod
    def _replace_day(
        self, name: str, day_column: str, day: date, rows: pa.RecordBatchReader
    ) -> None:
        """Delete the rows of table `name` (schema-qualified) whose `day_column` is `day` and
        insert `rows` (read once), in one transaction."""

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing (DDL)."""

    @abstractmethod
    def query_arrow(self, sql: str) -> pa.Table:
        """Run a query; columns come back with lower-case names."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the warehouse is, for people: a file or an account and database."""

    def raw_ddl(self) -> list[str]:
        """The statements that create the RAW schema and its tables (idempotent)."""
        return [
            f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
            *(t.ddl(self.dialect) for t in RAW_TABLES.values()),
        ]

    def load_raw(
        self,
        table: str,
        rows: pa.Table | pa.RecordBatchReader,
        batch_id: str,
        file_name: str | None,
        day: date,
    ) -> int:
        """Replace RAW `table`'s rows of batch day `day` with `rows`; returns the rows loaded.

        Idempotent per (table, day): loading the same day again leaves exactly the new rows.
        `rows` must have the columns of `raw.arrow_schema(table)` (missing nullable columns are
        null); UUID columns are turned into canonical strings here, once. A reader streams a
        day too large to hold at once: each batch is conformed as it passes, still one
        transaction.
        """
        loaded_at = datetime.now(UTC)
        schema = arrow_schema(table, with_load_columns=True)
        name = f"{SCHEMA}.{raw_table(table).name}"
        if isinstance(rows, pa.Table):
            loaded = conform(table, rows, batch_id, file_name, day, loaded_at)
            self._replace_day(
                name, BATCH_DAY, day, pa.RecordBatchReader.from_batches(schema, loaded.to_batches())
            )
            return int(loaded.num_rows)
        conform(table, rows.schema.empty_table(), batch_id, file_name, day, loaded_at)
        count, failure = 0, list[Problem]()

        def conformed() -> Iterator[pa.RecordBatch]:
            nonlocal count
            for batch in rows:
                try:
                    out = conform(
                        table, pa.Table.from_batches([batch]), batch_id, file_name, day, loaded_at
                    )
                except Problem as exc:
                    failure.append(exc)  # the warehouse's driver may wrap what its reader raised
                    raise
                count += out.num_rows
                yield from out.to_batches()

        try:
            self._replace_day(
                name, BATCH_DAY, day, pa.RecordBatchReader.from_batches(schema, conformed())
            )
        except Exception:
            if failure:
                raise failure[0] from None
            raise
        return count

    def replace_day(self, name: str, day_column: str, day: date, rows: pa.Table) -> None:
        """Replace table `name`'s rows of `day` with `rows` atomically (tables outside RAW,
        such as reconciliation results; the table must exist)."""
        self._replace_day(
            name, day_column, day, pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches())
        )

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def conform(
    table: str,
    rows: pa.Table,
    batch_id: str,
    file_name: str | None,
    day: date,
    loaded_at: datetime,
) -> pa.Table:
    """`rows` as RAW `table` stores them: the contract's columns, types and load columns."""
    contract = raw_table(table)
    expected = arrow_schema(table)
    extra = sorted(set(rows.column_names) - set(expected.names))
    if extra:
        raise Problem(
            f"RAW {table}: columns the contract does not have: {', '.join(extra)}",
            hint="the RAW columns are defined in lambdapipe.warehouse.raw (docs/warehouse.md)",
        )
    columns: list[pa.ChunkedArray] = []
    for column in contract.data_columns:
        target = ARROW_TYPES[column.kind]
        if column.name not in rows.column_names:
            if column.name == FILE_NAME or column.nullable:
                value = file_name if column.name == FILE_NAME else None
                columns.append(pa.chunked_array([pa.array([value] * rows.num_rows, target)]))
                continue
            raise Problem(f"RAW {table}: required column {column.name!r} is missing")
        data = rows.column(column.name)
        try:
            converted = uuid_strings(data) if column.kind == "uuid" else data.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise Problem(f"RAW {table}.{column.name}: cannot be {target}: {exc}") from None
        if not column.nullable and converted.null_count:
            raise Problem(f"RAW {table}.{column.name}: {converted.null_count} null values")
        columns.append(converted)
    n = rows.num_rows
    names = [c.name for c in contract.data_columns]
    load = {
        BATCH_DAY: pa.array([day] * n, ARROW_TYPES["date"]),
        LOADED_AT: pa.array([loaded_at.replace(tzinfo=None)] * n, ARROW_TYPES["timestamp"]),
        BATCH_ID: pa.array([batch_id] * n, ARROW_TYPES["string"]),
    }
    by_name = dict(zip(names, columns, strict=True))
    ordered = [
        by_name[c] if c in by_name else pa.chunked_array([load[c]]) for c in contract.column_names
    ]
    out = pa.Table.from_arrays(ordered, schema=arrow_schema(table, with_load_columns=True))
    if n and FILE_NAME in rows.column_names and file_name is not None:
        out = out.set_column(
            out.schema.get_field_index(FILE_NAME),
            FILE_NAME,
            pc.coalesce(out.column(FILE_NAME), pa.scalar(file_name)),
        )
    return out
