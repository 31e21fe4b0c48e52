"""The warehouse in a DuckDB file (the local profile)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from lambdapipe.errors import Problem
from lambdapipe.warehouse.base import Warehouse


class DuckDBWarehouse(Warehouse):
    """RAW, STAGING and MARTS in one DuckDB file; one writer process at a time."""

    dialect = "duckdb"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._conn: Any = None

    @property
    def location(self) -> str:
        return str(self.path)

    def connect(self) -> None:
        import duckdb

        if self._conn is not None:
            return
        if self.read_only and not self.path.exists():
            raise Problem(
                f"no warehouse at {self.path}", hint="run `lambdapipe batch run` to build it"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(str(self.path), read_only=self.read_only)
        except duckdb.IOException as exc:
            raise Problem(
                f"cannot open the warehouse {self.path}: {exc}",
                hint="another process holds it: DuckDB allows one writer process",
            ) from None
        if not self.read_only:
            for statement in self.raw_ddl():
                self._conn.execute(statement)

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self.connect()
        return self._conn

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)

    def _replace_day(
        self, name: str, day_column: str, day: date, rows: pa.RecordBatchReader
    ) -> None:
        columns = ", ".join(rows.schema.names)
        cursor = self.conn.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION")
            cursor.execute(f"DELETE FROM {name} WHERE {day_column} = ?", [day])  # noqa: S608
            cursor.register("lambdapipe_load", rows)
            cursor.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM lambdapipe_load")  # noqa: S608
            cursor.execute("COMMIT")
        except Exception:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def query_arrow(self, sql: str) -> pa.Table:
        relation = self.conn.sql(sql)
        if relation is None:
            raise Problem(
                "query_arrow takes a query", hint="statements that return no rows do not go here"
            )
        table: pa.Table = relation.to_arrow_table()
        return table.rename_columns([c.lower() for c in table.column_names])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
