"""The embedded adapter: the real ClickHouse engine in this process, through chdb.

chdb allows one engine per process and one process per data directory, so only `lambdapipe
serve` (or a test) opens it; other processes go through the serve process's HTTP endpoint.
A chdb session is not safe for concurrent queries (bound parameters of one query leak into
another), so every call holds one lock.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

import pyarrow as pa
from chdb import session as chdb_session

from lambdapipe.serving.ddl import INSERT_SETTINGS
from lambdapipe.serving.guard import check_statement, outside_names
from lambdapipe.serving.store import (
    Params,
    ServingStore,
    StoreError,
    check_dedup_token,
    check_identifier,
    param_text,
)

# One block per partition per insert, cut the same way at every replay: the dedup token is
# extended with the numbers of the source chunks, so the chunks must not depend on how the
# Arrow table was chunked (insert_arrow combines them) or on the machine (pinned thread count,
# one chunk per reading thread). The chunks are squashed into one block before the table and
# its views, so a batch writes one part per table, read and converted on two threads.
_SINGLE_BLOCK = {
    "max_threads": "2",
    "max_block_size": "100000000",
    "max_insert_threads": "1",
    "min_insert_block_size_rows": "1000000000000",
    "min_insert_block_size_bytes": "1000000000000000",
}


class EmbeddedStore(ServingStore):
    """ClickHouse embedded with chdb, data kept in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._session = chdb_session.Session(str(data_dir))  # type: ignore[no-untyped-call]

    def _run(self, sql: str, fmt: str, params: Params | None) -> object:
        return self.run_bound(sql, fmt, {name: param_text(v) for name, v in (params or {}).items()})

    def run_bound(self, sql: str, fmt: str, bound: dict[str, str]) -> object:
        """Run `sql` with parameters already in ClickHouse's text form, output in `fmt`."""
        with self._lock:
            try:
                return self._session.query(sql, fmt, params=bound)  # type: ignore[no-untyped-call]
            except Exception as exc:  # chdb raises a bare ChdbError/RuntimeError with CH's text
                raise StoreError(str(exc)) from exc

    def execute(self, sql: str, params: Params | None = None) -> None:
        """Run a statement and discard its output."""
        self._run(sql, "CSV", params)

    def query_bytes(self, sql: str, fmt: str, bound: dict[str, str]) -> bytes:
        """Run a query; the result serialized in the ClickHouse output format `fmt`."""
        return self.query_counted(sql, fmt, bound)[0]

    def query_counted(self, sql: str, fmt: str, bound: dict[str, str]) -> tuple[bytes, int]:
        """Like `query_bytes`, with the number of rows in the result."""
        result = self.run_bound(sql, fmt, bound)
        data = result.bytes()  # type: ignore[attr-defined]
        # chdb's rows_read counts the result's rows (measured: 1 for a count() over 1,000)
        return bytes(data), int(result.rows_read())  # type: ignore[attr-defined]

    def query_arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        """Run a query; the result as an Arrow table."""
        result = self._run(sql, "ArrowTable", params)
        if not isinstance(result, pa.Table):
            raise StoreError(f"chdb returned {type(result).__name__}, not an Arrow table")
        return result

    @cached_property
    def outside_names(self) -> frozenset[str]:
        """This engine's table functions and engines that reach outside it (see `guard`)."""
        return outside_names(self)

    def query_readonly(self, sql: str, params: Params | None = None) -> pa.Table:
        """The statement as `guard` lets a reader run it (the engine judges writes itself)."""
        checked = check_statement(self, sql, params, "reader", self.outside_names)
        return self.query_arrow(checked.statement, params)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> int:
        """Insert Arrow rows by column name through chdb's `Python()` table function."""
        check_identifier(table)
        columns = ", ".join(f"`{check_identifier(name)}`" for name in data.column_names)
        settings = dict(INSERT_SETTINGS, **_SINGLE_BLOCK)
        if dedup_token is not None:
            settings["insert_deduplication_token"] = f"'{check_dedup_token(dedup_token)}'"
        clause = ", ".join(f"{key} = {value}" for key, value in settings.items())
        # chdb's Python() resolves this local variable by name from the caller's frame.
        arrow_batch = data.combine_chunks()  # noqa: F841
        self._run(
            f"INSERT INTO {table} ({columns}) SETTINGS {clause} "  # noqa: S608
            f"SELECT {columns} FROM Python(arrow_batch)",
            "CSV",
            None,
        )
        return int(data.num_rows)

    def close(self) -> None:
        """Close the chdb session; the data directory is free for another owner."""
        with self._lock:
            self._session.close()  # type: ignore[no-untyped-call]
