"""Which parts of a day the two layers may see differently, found without moving the day's rows.

Each layer's engine sums its units per bucket of session id (the last `DIGITS` hex digits of
the id, so a session, its events and its transactions share a bucket): how many units and a
fingerprint of what reconcile compares (ids, type, tier, status, amount, funnel shape), by the
same arithmetic in ClickHouse and in the warehouse. Buckets whose digests are equal hold the
same units in both layers and contribute nothing to any difference; only the others' rows are
read (docs/reconcile.md, Performance).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final, Literal

import duckdb
import numpy as np
import pyarrow as pa

from lambdapipe.contracts.clickhouse import enriched_tiers
from lambdapipe.contracts.registry import EVENT_TYPES, default_registry

Engine = Literal["clickhouse", "duckdb", "snowflake"]
DIGITS: Final = 5
BUCKETS: Final = 16**DIGITS
_MODULUS: Final = 2**40  # a unit's fingerprint; a bucket's sum stays far below 2**63


def _codes(values: tuple[str, ...] | list[str], column: str, engine: Engine) -> str:
    """1-based position of `column` in `values` (0 when absent), in `engine`'s SQL."""
    listed = ", ".join(f"'{v}'" for v in values)
    if engine == "clickhouse":
        return f"indexOf([{listed}], {column})"
    if engine == "duckdb":
        return f"coalesce(list_position([{listed}], {column}), 0)"
    return f"coalesce(array_position({column}::variant, [{listed}]) + 1, 0)"


def _hex(text: str, digits: int, engine: Engine) -> str:
    """The integer of `digits` hex digits (SQL text expression `text`)."""
    if engine == "clickhouse":
        padded = f"concat('{'0' * (16 - digits)}', {text})"
        return f"reinterpretAsUInt64(reverse(unhex({padded})))"
    if engine == "duckdb":
        return f"CAST(('0x' || {text}) AS UBIGINT)"
    return f"to_number({text}, '{'X' * digits}')"


def _text(column: str, engine: Engine) -> str:
    return f"toString({column})" if engine == "clickhouse" else column


def bucket_key(session_id: str, engine: Engine) -> str:
    """The bucket of a session id column as text: its last DIGITS hex digits (the column is
    canonical text in the warehouse, a UUID in ClickHouse)."""
    return f"right({_text(session_id, engine)}, {DIGITS})"


def bucket(session_id: str, engine: Engine) -> str:
    """The bucket of a session id column as a number (0 to BUCKETS - 1)."""
    if engine == "clickhouse":  # the UUID's number, no text: its low bits are the last digits
        return f"toUInt32(bitAnd(toUInt128({session_id}), {BUCKETS - 1}))"
    return _hex(bucket_key(session_id, engine), DIGITS, engine)


def _id8(column: str, engine: Engine) -> str:
    """The number of an id's first 8 hex digits."""
    if engine == "clickhouse":
        return f"toUInt64(bitShiftRight(toUInt128({column}), 96))"
    return _hex(f"substring({_text(column, engine)}, 1, 8)", 8, engine)


def fingerprints(engine: Engine, funnel_counts: tuple[str, ...]) -> dict[str, str]:
    """Per table (events, transactions, sessions): a unit's fingerprint in `engine`'s SQL."""
    tiers = _codes(enriched_tiers(), "user_tier", engine)
    kinds = _codes(EVENT_TYPES, "event_type", engine)
    statuses = _codes(default_registry().common_def("transaction_status")["enum"], "status", engine)
    shape = " + ".join(
        f"(CASE WHEN {c} > 0 THEN {2**i} ELSE 0 END)" for i, c in enumerate(funnel_counts)
    )
    cents = "CAST(round(total_amount * 100) AS BIGINT)"
    return {
        # no session id: an event of another session in one layer is in another bucket there
        "events": f"({_id8('event_id', engine)} * ({kinds} * 8 + {tiers} + 1)) % {_MODULUS}",
        "transactions": f"({_id8('transaction_id', engine)} * ({statuses} * 8 + {tiers} + 1) "
        f"+ {cents}) % {_MODULUS}",
        "sessions": f"({_id8('session_id', engine)} * ({tiers} * 64 + {shape} + 1)) % {_MODULUS}",
    }


def digest_sql(engine: Engine, table: str, source: str, funnel_counts: tuple[str, ...]) -> str:
    """Per bucket of `source` (a FROM item holding the day's units of `table`): units, sum.
    ClickHouse names the bucket by its number, the warehouse by its key (no hex parsing)."""
    fingerprint = fingerprints(engine, funnel_counts)[table]
    named = bucket if engine == "clickhouse" else bucket_key
    key = named("session_id", engine)
    return (
        f"SELECT {key} AS bucket, count(*) AS n, sum({fingerprint}) AS fp FROM {source} GROUP BY 1"  # noqa: S608
    )


@dataclass(frozen=True)
class Buckets:
    """The buckets whose units are read: a sorted array of bucket numbers."""

    numbers: np.ndarray

    def __len__(self) -> int:
        return int(self.numbers.size)

    def clickhouse_filter(self, session_id: str) -> str:
        """A ClickHouse condition true for the rows of these buckets (a bitmap literal: the
        list itself would exceed the statement size for a day with many differing buckets)."""
        if not len(self):
            return "0"
        bits = np.zeros(BUCKETS, dtype=bool)
        bits[self.numbers] = True
        bitmap = base64.b64encode(np.packbits(bits, bitorder="little").tobytes()).decode()
        b = bucket(session_id, "clickhouse")
        return (
            f"bitTest(reinterpretAsUInt8(substring(base64Decode('{bitmap}'), "
            f"intDiv({b}, 8) + 1, 1)), {b} % 8)"
        )

    def warehouse_filter(self, session_id: str, engine: Engine) -> str:
        """The same condition in the warehouse's SQL (a list of bucket keys)."""
        if not len(self):
            return "false"
        listed = ", ".join(f"'{int(n):0{DIGITS}x}'" for n in self.numbers)
        return f"{bucket_key(session_id, engine)} IN ({listed})"


def differing(speed: dict[str, pa.Table], batch: dict[str, pa.Table], extra: pa.Array) -> Buckets:
    """The buckets whose digests differ in any table, and the bucket keys in `extra`."""
    con = duckdb.connect()
    try:
        parts = []
        for table in speed:
            for side, digests in (("s", speed[table]), ("b", batch[table])):
                con.register(f"{side}_{table}_raw", digests)
                key = (
                    f"lpad(lower(hex(bucket)), {DIGITS}, '0')"  # ClickHouse's: a number
                    if pa.types.is_integer(digests.schema.field("bucket").type)
                    else "bucket"
                )
                con.execute(
                    f"CREATE TEMP VIEW {side}_{table} AS "  # noqa: S608
                    f"SELECT {key} AS bucket, n, fp FROM {side}_{table}_raw"
                )
            parts.append(
                f"SELECT coalesce(s.bucket, b.bucket) AS bucket FROM s_{table} AS s "  # noqa: S608
                f"FULL JOIN b_{table} AS b ON s.bucket = b.bucket "
                "WHERE s.n IS DISTINCT FROM b.n OR s.fp IS DISTINCT FROM b.fp"
            )
        con.register("extra", pa.table({"bucket": extra}))
        parts.append("SELECT bucket FROM extra WHERE bucket IS NOT NULL")
        found = con.sql(
            f"SELECT DISTINCT CAST({_hex('bucket', DIGITS, 'duckdb')} AS BIGINT) AS bucket FROM ("  # noqa: S608
            + " UNION ALL ".join(parts)
            + ") ORDER BY 1"
        ).to_arrow_table()
    finally:
        con.close()
    return Buckets(found.column("bucket").to_numpy())
