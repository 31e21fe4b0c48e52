"""The serving store interface: ClickHouse SQL with bound parameters, Arrow in and out.

Two adapters implement it: `embedded.EmbeddedStore` (chdb, in the `lambdapipe serve` process)
and `http.HttpStore` (the ClickHouse HTTP interface, of a server or of `lambdapipe serve`).
Business code sees only this interface; `lambdapipe.resources` picks the adapter.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import pyarrow as pa

from lambdapipe.serving.ddl import schema_statements, upgrade_statements
from lambdapipe.serving.dimensions import dimension_statements

Params = Mapping[str, Any]

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Tokens travel inside a SETTINGS clause and a URL: a conservative alphabet keeps both safe.
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.:/=+-]{1,512}")
_TSV_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class StoreError(Exception):
    """ClickHouse refused a statement; the message is ClickHouse's own."""


class Refused(StoreError):
    """The statement is not allowed for this user (HTTP 403); nothing ran."""


def check_identifier(name: str) -> str:
    """Return `name` if it is a plain ClickHouse identifier, else raise ValueError."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a table name: {name!r}")
    return name


def check_dedup_token(token: str) -> str:
    """Return `token` if it uses the allowed alphabet `[A-Za-z0-9_.:/=+-]`, 1 to 512 chars."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"dedup token must match {_TOKEN.pattern}: {token!r}")
    return token


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return param_text(value)


def param_text(value: Any) -> str:
    """A query parameter as ClickHouse parses it for `{name:Type}` (escaped text format)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return str(value.isoformat(sep=" ", timespec="milliseconds"))
    if isinstance(value, date | int | float | Decimal | UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_literal(item) for item in value) + "]"
    text: str = str(value).translate(_TSV_ESCAPES)
    return text


class ServingStore(ABC):
    """ClickHouse, embedded or remote: the serving layer's only way to its data."""

    @abstractmethod
    def execute(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns nothing (DDL, OPTIMIZE, INSERT ... SELECT)."""

    @abstractmethod
    def query_arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        """Run a query with `{name:Type}` parameters bound from `params`; the result as Arrow."""

    @abstractmethod
    def query_bytes(self, sql: str, fmt: str, bound: dict[str, str]) -> bytes:
        """Run a query with parameters already in ClickHouse's text form; the result in the
        ClickHouse output format `fmt`, as bytes (what a ClickHouse HTTP endpoint returns)."""

    @abstractmethod
    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> int:
        """Insert `data` into `table` by column name; return the rows sent.

        With a `dedup_token`, inserting the same token again adds nothing, in the table and in
        every materialized view fed by it (see docs/serving.md for the token format).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the engine or connection."""

    def query_rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Like `query_arrow`, as a list of dicts."""
        rows: list[dict[str, Any]] = self.query_arrow(sql, params).to_pylist()
        return rows

    def ping(self) -> bool:
        """True when the store answers a trivial query."""
        try:
            return bool(self.query_rows("SELECT 1 AS ok")[0]["ok"] == 1)
        except (StoreError, OSError):
            return False

    @abstractmethod
    def query_readonly(self, sql: str, params: Params | None = None) -> pa.Table:
        """Run one user-written SELECT as a reader would: under `readonly = 1`, no SETTINGS,
        nothing that reaches outside the engine; else raise `Refused`."""

    def create_schema(self, retention_days: int) -> None:
        """Upgrade an older layout (`upgrade_statements`), then create every table,
        materialized view and dimension table that does not exist yet."""
        rows = self.query_rows(
            "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()"
        )
        created = {str(row["name"]): str(row["create_table_query"]) for row in rows}
        for statement in upgrade_statements(created):
            self.execute(statement)
        for statement in [*schema_statements(retention_days), *dimension_statements()]:
            self.execute(statement)

    def __enter__(self) -> ServingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
