"""The HTTP adapter: ClickHouse's HTTP interface, of a real server or of `lambdapipe serve`.

It speaks the documented subset both ends understand: `POST <url>?query=...` with bound
parameters as `param_<name>`, settings as URL parameters, results as `default_format=ArrowStream`
and inserts as `INSERT INTO t (cols) FORMAT ArrowStream` with an Arrow IPC stream body.
clickhouse-connect was not used: its handshake and Native-format inserts would have to be
emulated by the serve process, while this subset is served by both as is.
"""

from __future__ import annotations

from typing import Final

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
from pydantic import SecretStr

from lambdapipe.serving.ddl import INSERT_SETTINGS
from lambdapipe.serving.store import (
    Params,
    Refused,
    ServingStore,
    StoreError,
    check_dedup_token,
    check_identifier,
    param_text,
)

ARROW_STREAM: Final = "ArrowStream"
# statements longer than this (characters) go in the request body, not the URL
LONG_STATEMENT: Final = 8192


def arrow_stream_bytes(data: pa.Table) -> bytes:
    """`data` as an Arrow IPC stream, the body of an `INSERT ... FORMAT ArrowStream`."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return bytes(sink.getvalue().to_pybytes())


def _content(response: httpx.Response) -> bytes:
    if response.status_code == httpx.codes.FORBIDDEN:
        raise Refused(response.text.strip())
    if response.status_code != httpx.codes.OK:
        raise StoreError(response.text.strip() or f"HTTP {response.status_code}")
    return response.content


class HttpStore(ServingStore):
    """A ClickHouse HTTP endpoint at `url` (e.g. `http://127.0.0.1:8123/clickhouse/`)."""

    def __init__(
        self,
        url: str,
        user: str = "default",
        password: SecretStr | None = None,
        database: str = "default",
        timeout_s: float = 30.0,
    ) -> None:
        # headers, never URL parameters: no secret in a URL (and so in no access log)
        headers = {"X-ClickHouse-User": user, "X-ClickHouse-Database": database}
        if password is not None and password.get_secret_value():
            headers["X-ClickHouse-Key"] = password.get_secret_value()
        self.url = url
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    def _post(
        self,
        sql: str,
        params: Params | None,
        settings: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> bytes:
        query = {"query": sql, **(settings or {})}
        query.update({f"param_{k}": param_text(v) for k, v in (params or {}).items()})
        if body is None and len(sql) > LONG_STATEMENT:
            # URLs have a length limit; ClickHouse reads a statement from the body as well
            body = sql.encode()
            del query["query"]
        try:
            response = self._client.post(self.url, params=query, content=body or b"")
        except httpx.HTTPError as exc:
            raise StoreError(f"ClickHouse at {self.url} unreachable: {exc}") from exc
        return _content(response)

    def execute(self, sql: str, params: Params | None = None) -> None:
        """Run a statement and discard its output."""
        self._post(sql, params)

    def query_arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        """Run a query; the result read from an Arrow stream."""
        content = self._post(sql, params, {"default_format": ARROW_STREAM})
        if not content:
            return pa.table({})
        return ipc.open_stream(content).read_all()

    def query_bytes(self, sql: str, fmt: str, bound: dict[str, str]) -> bytes:
        """Relay a query; the server's bytes in format `fmt`."""
        query = {"query": sql, "default_format": fmt, **{f"param_{k}": v for k, v in bound.items()}}
        try:
            response = self._client.post(self.url, params=query)
        except httpx.HTTPError as exc:
            raise StoreError(f"ClickHouse at {self.url} unreachable: {exc}") from exc
        return _content(response)

    def query_readonly(self, sql: str, params: Params | None = None) -> pa.Table:
        """Run one SELECT with `readonly = 1`: the server judges it (`Refused` on HTTP 403)."""
        content = self._post(sql, params, {"default_format": ARROW_STREAM, "readonly": "1"})
        return ipc.open_stream(content).read_all() if content else pa.table({})

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> int:
        """POST `data` as an Arrow stream; the token goes as `insert_deduplication_token`."""
        columns = ", ".join(f"`{check_identifier(name)}`" for name in data.column_names)
        settings = dict(INSERT_SETTINGS)
        if dedup_token is not None:
            settings["insert_deduplication_token"] = check_dedup_token(dedup_token)
        sql = f"INSERT INTO {check_identifier(table)} ({columns}) FORMAT {ARROW_STREAM}"
        self._post(sql, None, settings, arrow_stream_bytes(data))
        return int(data.num_rows)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
