"""The ClickHouse-style HTTP endpoint of `lambdapipe serve`, over the embedded store.

Other local processes (the speed layer, `lambdapipe query sql`, tools) reach the embedded store
here exactly as they would a ClickHouse server's HTTP interface, for the subset `HttpStore`
uses: `query` and `param_<name>` URL parameters, `default_format`, `readonly`,
`insert_deduplication_token`, and `INSERT INTO t (cols) FORMAT ArrowStream|Arrow` bodies.
"""

from __future__ import annotations

import re
from typing import Final

import pyarrow as pa
import pyarrow.ipc as ipc
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lambdapipe.serving.store import ReadOnlyViolation, ServingStore, StoreError

_INSERT: Final = re.compile(
    r"\s*INSERT\s+INTO\s+`?(?P<table>\w+)`?\s*(?:\((?P<columns>[^)]*)\))?\s*"
    r"FORMAT\s+(?P<format>ArrowStream|Arrow)\s*;?\s*",
    re.IGNORECASE,
)
_ERROR_CODE: Final = re.compile(r"Code: (\d+)")


def _read_arrow(body: bytes, fmt: str) -> pa.Table:
    if fmt.lower() == "arrow":
        return ipc.open_file(pa.BufferReader(body)).read_all()
    return ipc.open_stream(pa.BufferReader(body)).read_all()


def _error(exc: StoreError, status: int) -> Response:
    code = _ERROR_CODE.search(str(exc))
    headers = {"X-ClickHouse-Exception-Code": code.group(1)} if code else {}
    return Response(f"{exc}\n", status_code=status, headers=headers, media_type="text/plain")


def clickhouse_router(store: ServingStore) -> APIRouter:
    """`/clickhouse/`: a ClickHouse HTTP interface subset over the store this process owns."""
    router = APIRouter(prefix="/clickhouse", include_in_schema=False)

    def handle(url_params: dict[str, str], body: bytes) -> Response:
        sql = url_params.get("query") or body.decode()
        bound = {
            k.removeprefix("param_"): v for k, v in url_params.items() if k.startswith("param_")
        }
        insert = _INSERT.fullmatch(sql)
        if insert and url_params.get("query"):
            data = _read_arrow(body, insert["format"])
            store.insert_arrow(insert["table"], data, url_params.get("insert_deduplication_token"))
            return Response(status_code=200)
        if url_params.get("readonly", "0") != "0":
            sql = store.readonly_statement(sql, bound)
        fmt = url_params.get("default_format", "TabSeparated")
        return Response(store.query_bytes(sql, fmt, bound), media_type="application/octet-stream")

    @router.api_route("/", methods=["GET", "POST"])
    async def clickhouse(request: Request) -> Response:
        body = await request.body()
        try:
            return await run_in_threadpool(handle, dict(request.query_params), body)
        except ReadOnlyViolation as exc:
            return _error(exc, 403)
        except (StoreError, ValueError, pa.ArrowInvalid) as exc:
            return _error(StoreError(str(exc)), 400)

    @router.get("/ping")
    def ping() -> Response:
        return Response("Ok.\n", media_type="text/plain")

    return router
