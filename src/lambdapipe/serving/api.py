"""The serving API: dashboard queries as JSON, read-only SQL, the dashboard page and metrics.

`create_app(store)` serves any `ServingStore`. When this process owns an embedded engine
(`store_endpoint=True`), the app also mounts the ClickHouse-style HTTP endpoint other processes
use to reach it. Every route that reaches data needs credentials (`auth`): the API and the
dashboard's data a bearer token, the store endpoint a store user. `/health`, `/metrics`, the
OpenAPI spec and the dashboard page itself carry no data and stay open. Every request to the
API and the store endpoint is written to the audit log (`audit`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel

from lambdapipe.serving import queries
from lambdapipe.serving.audit import AuditEntry, AuditLog
from lambdapipe.serving.auth import API_CHALLENGE, Access, Unauthenticated
from lambdapipe.serving.dashboard import dashboard_html
from lambdapipe.serving.store import Refused, ServingStore, StoreError

# Literals (not built from the contracts) so OpenAPI lists them; a test checks them against it.
Tier = Literal["bronze", "silver", "gold", "platinum", "unknown"]
Device = Literal["desktop", "mobile", "tablet"]
# Longest range a query may cover: beyond the retention there is nothing to read.
MAX_RANGE_DAYS = 366


class DateRange(BaseModel):
    """Inclusive UTC day range of a query."""

    start: date
    end: date


def date_range(
    start: Annotated[date | None, Query(description="first UTC day, default yesterday")] = None,
    end: Annotated[date | None, Query(description="last UTC day, default today")] = None,
) -> DateRange:
    """Validate `start <= end` and the range's length; defaults cover yesterday and today."""
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end - timedelta(days=1)
    if start > end:
        raise HTTPException(400, f"start ({start}) is after end ({end})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise HTTPException(400, f"range longer than {MAX_RANGE_DAYS} days")
    return DateRange(start=start, end=end)


Range = Annotated[DateRange, Depends(date_range)]
# Which layer answers: both merged at the batch watermark (default), or one alone to compare.
Layer = Annotated[
    queries.Source,
    Query(description="merged: batch up to the watermark, realtime after; or one layer alone"),
]
# a security scheme, so the OpenAPI spec says how to sign in (module level: annotations are
# resolved in the module's namespace)
BEARER = HTTPBearer(auto_error=False, description="the API token (LAMBDAPIPE_SERVING__API_TOKEN)")


class SqlQuery(BaseModel):
    """A read-only SELECT for `lambdapipe query sql`."""

    sql: str


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram, Counter]:
    requests = Counter(
        "lambdapipe_serving_requests",
        "API requests by route and status",
        ["route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "lambdapipe_serving_request_seconds",
        "API request latency by route",
        ["route"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    )
    refused = Counter(
        "lambdapipe_serving_refused",
        "API and store requests refused: 401 (no or wrong credentials), 403 (not allowed)",
        ["route", "status"],
        registry=registry,
    )
    return requests, latency, refused


def _rows(response: Response) -> int | None:
    """How many rows a JSON answer carries: its `X-Rows`, a list's length, else one document."""
    if "x-rows" in response.headers:
        return int(response.headers["x-rows"])
    if response.status_code != 200 or response.media_type != "application/json":
        return None
    document = orjson.loads(bytes(response.body))
    return len(document) if isinstance(document, list) else 1


class _CountedRoute(APIRoute):
    """An API route that notes the rows of its answer in the request's audit entry."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def counted(request: Request) -> Response:
            response = await handler(request)
            request.state.audit.rows = _rows(response)
            return response

        return counted


def api_router(store: ServingStore, access: Access) -> APIRouter:
    """The JSON endpoints behind the dashboard and `lambdapipe query sql`, behind the token."""

    def signed_in(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        audit: AuditEntry = request.state.audit
        try:
            access.api_caller(f"Bearer {credentials.credentials}" if credentials else None)
        except Unauthenticated as exc:
            audit.reason = str(exc)
            raise HTTPException(401, str(exc), {"WWW-Authenticate": API_CHALLENGE}) from exc
        audit.who, audit.role = "api", "reader"

    router = APIRouter(
        prefix="/api",
        dependencies=[Depends(signed_in)],
        route_class=_CountedRoute,
        responses={401: {"description": "no or wrong API token"}},
    )

    @router.get("/funnel", summary="Conversion funnel per session, ordered steps")
    def funnel(
        days: Range,
        tier: Tier | None = None,
        device: Device | None = None,
        source: Layer = "merged",
    ) -> Any:
        return queries.funnel(store, days.start, days.end, tier or "", device or "", source)

    @router.get("/tiers", summary="Performance per user tier")
    def tiers(days: Range, source: Layer = "merged") -> Any:
        return queries.tier_performance(store, days.start, days.end, source)

    @router.get("/products/top", summary="Top products by a metric")
    def top_products(
        days: Range,
        metric: queries.ProductMetric = "revenue",
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        source: Layer = "merged",
    ) -> Any:
        return queries.top_products(store, days.start, days.end, metric, limit, source)

    @router.get("/sessions", summary="Sessions per device, browser or tier")
    def sessions(
        days: Range,
        group_by: queries.SessionGrouping = "device_type",
        tier: Tier | None = None,
        device: Device | None = None,
        source: Layer = "merged",
    ) -> Any:
        return queries.sessions(
            store, days.start, days.end, group_by, tier or "", device or "", source
        )

    @router.get("/revenue", summary="Completed revenue over time")
    def revenue(days: Range, interval: queries.Interval = "hour", source: Layer = "merged") -> Any:
        return queries.revenue(store, days.start, days.end, interval, source)

    @router.get("/freshness", summary="Now minus the newest event time, and ingestion lag")
    def freshness() -> Any:
        return queries.freshness(store)

    @router.get("/activity", summary="Events/s, dead-letter rate, events per minute")
    def activity(
        window_s: Annotated[int, Query(ge=1, le=3600)] = 10,
        minutes: Annotated[int, Query(ge=1, le=1440)] = 30,
        source: Layer = "merged",
    ) -> Any:
        return queries.activity(store, window_s, minutes, source)

    @router.post("/sql", summary="Run one SELECT under readonly = 1")
    def sql(body: SqlQuery, request: Request) -> Any:
        request.state.audit.statement_of(body.sql)
        try:
            table = store.query_readonly(body.sql)
        except Refused as exc:
            request.state.audit.reason = str(exc)
            raise HTTPException(403, str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(400, str(exc)) from exc
        return JSONResponse(
            {"columns": table.column_names, "rows": table.to_pylist()},
            headers={"X-Rows": str(table.num_rows)},
        )

    return router


def create_app(
    store: ServingStore,
    backend: str,
    access: Access,
    *,
    store_endpoint: bool = False,
    audit: AuditLog | None = None,
) -> FastAPI:
    """The FastAPI app serving `store`: API, dashboard, /health, /metrics (+ /clickhouse/).

    `access` holds the credentials it accepts; `audit` receives a line per API or store request.
    """
    app = FastAPI(
        title="lambdapipe serving API",
        description="E-commerce analytics: batch views up to the batch watermark, realtime after.",
        version="1",
    )
    registry = CollectorRegistry()
    requests, latency, refused = _metrics(registry)
    audit_log = audit or AuditLog(None)

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        audited = request.url.path.startswith(("/api/", "/clickhouse/"))
        entry = AuditEntry.begin(request.method, request.url.path)
        request.state.audit = entry
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        requests.labels(name, str(response.status_code)).inc()
        latency.labels(name).observe(time.perf_counter() - started)
        if audited:
            entry.status = response.status_code
            entry.route = request.url.path if name == "unmatched" else name
            entry.allowed = response.status_code not in (401, 403)
            if not entry.allowed:
                refused.labels(name, str(response.status_code)).inc()
            audit_log.write(entry)
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    @app.exception_handler(StoreError)
    async def store_failed(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"serving store error: {exc}"}, status_code=503)

    @app.get("/health", summary="Liveness of the API and its store")
    def health() -> JSONResponse:
        alive = store.ping()
        return JSONResponse(
            {"status": "ok" if alive else "store unavailable", "backend": backend},
            status_code=200 if alive else 503,
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return dashboard_html()

    app.include_router(api_router(store, access))
    if store_endpoint:
        from lambdapipe.serving.embedded import EmbeddedStore
        from lambdapipe.serving.endpoint import clickhouse_router

        if not isinstance(store, EmbeddedStore):
            raise TypeError("the store endpoint serves an embedded store only")
        app.include_router(clickhouse_router(store, access))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
