"""The RAW contract: the warehouse tables the batch job loads, and the one UUID -> STRING rule.

RAW mirrors the serving store's realtime tables (`serving/ddl.py`, derived from `schemas/`):
same column names, UUIDs and IPs as strings, money as DECIMAL(10, 2), instants as UTC
timestamps without a zone. The batch layer adds what only it knows (the exact session of each
event, the product snapshot of the day) and every table gets the load's bookkeeping columns.
This module is the one place those columns are defined: the Spark batch job writes exactly
`arrow_schema(table)`, and `Warehouse.load_raw` refuses anything else. docs/warehouse.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc

from lambdapipe.contracts.clickhouse import clickhouse_columns, enriched_columns
from lambdapipe.errors import Problem

# Logical column types; each maps to one Arrow type and one SQL type per warehouse.
Kind = Literal["uuid", "string", "decimal", "timestamp", "date", "int", "bigint", "bool", "binary"]

ARROW_TYPES: Final[dict[Kind, pa.DataType]] = {
    "uuid": pa.string(),
    "string": pa.string(),
    "decimal": pa.decimal128(10, 2),
    # UTC instants without a zone: a zone-aware column would follow the session's time zone
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "bool": pa.bool_(),
    "binary": pa.binary(),
}
SQL_TYPES: Final[dict[str, dict[Kind, str]]] = {
    "duckdb": {
        "uuid": "VARCHAR",
        "string": "VARCHAR",
        "decimal": "DECIMAL(10, 2)",
        "timestamp": "TIMESTAMP",
        "date": "DATE",
        "int": "INTEGER",
        "bigint": "BIGINT",
        "bool": "BOOLEAN",
        "binary": "BLOB",
    },
    "snowflake": {
        "uuid": "VARCHAR",
        "string": "VARCHAR",
        "decimal": "NUMBER(10, 2)",
        "timestamp": "TIMESTAMP_NTZ",
        "date": "DATE",
        "int": "INTEGER",
        "bigint": "BIGINT",
        "bool": "BOOLEAN",
        "binary": "BINARY",
    },
}

SCHEMA: Final = "raw"
# Columns every RAW table has; `load_raw` fills them (file_name per row when the rows carry it).
BATCH_DAY: Final = "batch_day"
LOADED_AT: Final = "loaded_at"
BATCH_ID: Final = "batch_id"
FILE_NAME: Final = "file_name"


@dataclass(frozen=True)
class RawColumn:
    """One column of a RAW table."""

    name: str
    kind: Kind
    nullable: bool
    description: str = ""


@dataclass(frozen=True)
class RawTable:
    """One RAW table: its columns in order, and what one row is."""

    name: str
    columns: tuple[RawColumn, ...]
    description: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def data_columns(self) -> tuple[RawColumn, ...]:
        """The columns the batch job provides (everything but the load's bookkeeping)."""
        return tuple(c for c in self.columns if c.name not in _LOAD_FILLED)

    def ddl(self, dialect: str) -> str:
        """CREATE TABLE IF NOT EXISTS in `dialect` (duckdb | snowflake), schema-qualified."""
        types = SQL_TYPES[dialect]
        cols = ",\n    ".join(
            f"{c.name} {types[c.kind]}{'' if c.nullable else ' NOT NULL'}" for c in self.columns
        )
        return f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{self.name} (\n    {cols}\n)"


def _kind(clickhouse_type: str) -> tuple[Kind, bool]:
    """The logical kind of a ClickHouse column type, and whether it is nullable."""
    nullable = "Nullable(" in clickhouse_type
    inner = re.sub(r"^(LowCardinality\()?(Nullable\()?(.*?)\)*$", r"\3", clickhouse_type)
    if inner in ("UUID",):
        return "uuid", nullable
    if inner.startswith("Decimal"):
        return "decimal", nullable
    if inner.startswith("DateTime64"):
        return "timestamp", nullable
    if inner.startswith("Date"):
        return "date", nullable
    if inner in ("UInt8", "UInt16", "UInt32"):
        return "int", nullable
    if inner in ("UInt64", "Int64"):
        return "bigint", nullable
    if inner == "Bool":
        return "bool", nullable
    # String, IPv4 (dotted quad) and the enums
    return "string", nullable


def _from_contract(columns: Iterable[tuple[str, str]]) -> tuple[RawColumn, ...]:
    return tuple(RawColumn(name, *_kind(kind)) for name, kind in columns)


_LOAD_COLUMNS: Final = (
    RawColumn(BATCH_DAY, "date", False, "the batch day this row belongs to (the load's unit)"),
    RawColumn(LOADED_AT, "timestamp", False, "when the load that wrote this row committed (UTC)"),
    RawColumn(BATCH_ID, "string", False, "the batch run that produced the row"),
    RawColumn(FILE_NAME, "string", True, "the curated data file the row came from"),
)
_LOAD_FILLED: Final = frozenset({BATCH_DAY, LOADED_AT, BATCH_ID})

SESSION_KEY: Final = "session_key"
SESSION_START: Final = "session_start"

USER_EVENTS: Final = RawTable(
    "user_events",
    (
        *_from_contract(enriched_columns("user_event")),
        RawColumn(
            SESSION_KEY,
            "string",
            False,
            "the batch session: session_id, '/', epoch milliseconds of the session's first event",
        ),
        RawColumn(SESSION_START, "timestamp", False, "time of the batch session's first event"),
        *_LOAD_COLUMNS,
    ),
    "one accepted, deduplicated event; batch_day is the UTC day of `timestamp`",
)
TRANSACTIONS: Final = RawTable(
    "transactions",
    (*_from_contract(enriched_columns("transaction")), *_LOAD_COLUMNS),
    "one accepted, deduplicated transaction line; batch_day is the UTC day of `timestamp`",
)
PRODUCTS: Final = RawTable(
    "products",
    (*_from_contract(clickhouse_columns("product")), *_LOAD_COLUMNS),
    "the product catalogue as of the end of batch_day (from the CDC history), every product",
)
DEAD_LETTERS: Final = RawTable(
    "dead_letters",
    (
        RawColumn("source_topic", "string", False),
        RawColumn("source_partition", "int", False),
        RawColumn("source_offset", "bigint", False),
        RawColumn("kafka_timestamp", "timestamp", False, "the Kafka record timestamp"),
        RawColumn("event_time", "timestamp", True, "the record's event time where it parses"),
        RawColumn("reason", "string", False, "a lambdapipe.contracts.Reason value"),
        RawColumn("event_type", "string", True),
        RawColumn("detail", "string", False),
        RawColumn("raw", "binary", False, "the original record bytes"),
        *_LOAD_COLUMNS,
    ),
    "one record the batch job rejected, with its reason (the speed layer's dead-letter columns)",
)

RAW_TABLES: Final[dict[str, RawTable]] = {
    t.name: t for t in (USER_EVENTS, TRANSACTIONS, PRODUCTS, DEAD_LETTERS)
}


def raw_table(name: str) -> RawTable:
    """The RAW table `name`, or a Problem naming the ones there are."""
    try:
        return RAW_TABLES[name]
    except KeyError:
        raise Problem(
            f"no RAW table {name!r}", hint=f"RAW tables: {', '.join(RAW_TABLES)}"
        ) from None


def arrow_schema(table: str, *, with_load_columns: bool = False) -> pa.Schema:
    """The Arrow schema the batch job writes for `table` (the load adds its own columns)."""
    columns = raw_table(table).columns if with_load_columns else raw_table(table).data_columns
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind], c.nullable) for c in columns])


# ---- the one UUID -> STRING rule -------------------------------------------------------------

_CANONICAL: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_UUID_PATTERN: Final = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def uuid_string(value: Any) -> str | None:
    """A UUID as the warehouse stores it: lowercase 8-4-4-4-12, the wire format of schemas/.

    Accepts a `uuid.UUID`, its 16 bytes (Iceberg/Arrow `uuid`, ClickHouse's binary UUID) or any
    spelling `uuid.UUID` reads (upper case, braces, no dashes); None stays None.
    """
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return str(uuid.UUID(bytes=bytes(value)))
    text = str(value)
    if _CANONICAL.match(text):
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise Problem(
            f"{text!r} is not a UUID", hint="UUIDs are 32 hex digits (8-4-4-4-12)"
        ) from None


def uuid_strings(column: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """`uuid_string` over an Arrow column (strings, 16-byte binaries or the uuid extension)."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    kind = column.type
    if isinstance(kind, pa.ExtensionType):
        column = pa.chunked_array([c.storage for c in column.chunks], kind.storage_type)
        kind = kind.storage_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        strings = column.cast(pa.string())
        lowered = pc.utf8_lower(strings)
        canonical = pc.match_substring_regex(lowered, _UUID_PATTERN)
        if pc.all(pc.or_kleene(canonical, pc.is_null(lowered))).as_py():
            return lowered
        return pa.chunked_array([pa.array([uuid_string(v) for v in strings.to_pylist()])])
    if pa.types.is_fixed_size_binary(kind) or pa.types.is_binary(kind):
        return pa.chunked_array(
            [pa.array([uuid_string(v) for v in column.to_pylist()], pa.string())]
        )
    raise Problem(f"a UUID column cannot be of type {kind}", hint="write strings or 16 bytes")
