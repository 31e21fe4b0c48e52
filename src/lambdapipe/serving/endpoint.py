"""The ClickHouse-style HTTP endpoint of `lambdapipe serve`, over the embedded store.

Other local processes (the speed layer, `lambdapipe query sql`, ClickHouse clients) reach the
embedded store here exactly as they would a ClickHouse server's HTTP interface, for the subset
`HttpStore` and clickhouse-connect use: `query` and `param_<name>` URL parameters,
`default_format`, `readonly`, `insert_deduplication_token`, and `INSERT INTO t (cols) FORMAT
ArrowStream|Arrow` bodies. Other settings in the URL are not applied.

Every request signs in as a store user (`auth`); what the user's role may run is `guard`'s call.
"""

from __future__ import annotations

import re
from typing import Final

import pyarrow as pa
import pyarrow.ipc as ipc
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lambdapipe.serving.audit import AuditEntry
from lambdapipe.serving.auth import STORE_CHALLENGE, Access, StoreUser, Unauthenticated
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.guard import check_statement
from lambdapipe.serving.store import Refused, StoreError

_INSERT: Final = re.compile(
    r"\s*INSERT\s+INTO\s+`?(?P<table>\w+)`?\s*(?:\((?P<columns>[^)]*)\))?\s*"
    r"FORMAT\s+(?P<format>ArrowStream|Arrow)\s*;?\s*",
    re.IGNORECASE,
)
_ERROR_CODE: Final = re.compile(r"Code: (\d+)")
# ClickHouse's own codes, so its clients name the failure
AUTHENTICATION_FAILED: Final = "516"
ACCESS_DENIED: Final = "497"


def _read_arrow(body: bytes, fmt: str) -> pa.Table:
    if fmt.lower() == "arrow":
        return ipc.open_file(pa.BufferReader(body)).read_all()
    return ipc.open_stream(pa.BufferReader(body)).read_all()


def _error(message: str, status: int, code: str | None, audit: AuditEntry) -> Response:
    audit.reason = message[:300]
    code = code or (found[1] if (found := _ERROR_CODE.search(message)) else None)
    headers = {"X-ClickHouse-Exception-Code": code} if code else {}
    if status == 401:
        headers["WWW-Authenticate"] = STORE_CHALLENGE
    return Response(f"{message}\n", status_code=status, headers=headers, media_type="text/plain")


def clickhouse_router(store: EmbeddedStore, access: Access) -> APIRouter:
    """`/clickhouse/`: a ClickHouse HTTP interface subset over the store this process owns."""
    router = APIRouter(prefix="/clickhouse", include_in_schema=False)

    def handle(
        user: StoreUser, url_params: dict[str, str], body: bytes, audit: AuditEntry
    ) -> Response:
        sql = url_params.get("query") or body.decode()
        audit.statement_of(sql)
        bound = {
            k.removeprefix("param_"): v for k, v in url_params.items() if k.startswith("param_")
        }
        insert = _INSERT.fullmatch(sql)
        if insert and url_params.get("query"):
            if user.role != "writer":
                raise Refused(f"{user.name} is a reader: INSERT is refused")
            data = _read_arrow(body, insert["format"])
            audit.rows = store.insert_arrow(
                insert["table"], data, url_params.get("insert_deduplication_token")
            )
            return Response(status_code=200)
        role = "reader" if url_params.get("readonly", "0") != "0" else user.role
        checked = check_statement(store, sql, bound, role, store.outside_names)
        fmt = checked.output_format or url_params.get("default_format", "TabSeparated")
        data, audit.rows = store.query_counted(checked.statement, fmt, bound)
        return Response(data, media_type="application/octet-stream")

    @router.api_route("/", methods=["GET", "POST"])
    async def clickhouse(request: Request) -> Response:
        # the app's audit middleware opened the entry; a bare router gets one of its own
        entry = getattr(request.state, "audit", None) or AuditEntry.begin(request.method, "/")
        query = dict(request.query_params)
        try:
            user = access.store_user(request.headers, query)
        except Unauthenticated as exc:
            return _error(str(exc), 401, AUTHENTICATION_FAILED, entry)
        entry.who, entry.role = user.name, user.role
        body = await request.body()
        try:
            return await run_in_threadpool(handle, user, query, body, entry)
        except Refused as exc:
            return _error(str(exc), 403, ACCESS_DENIED, entry)
        except (StoreError, ValueError, pa.ArrowInvalid) as exc:
            return _error(str(exc), 400, None, entry)

    @router.get("/ping")
    def ping() -> Response:
        return Response("Ok.\n", media_type="text/plain")

    return router
