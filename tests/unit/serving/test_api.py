"""The serving API over the embedded store: every endpoint, bad parameters, injection, writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import get_args

import pytest
from fastapi.testclient import TestClient

from bench.serving_sample import Batch
from lambdapipe.contracts.clickhouse import enriched_tiers
from lambdapipe.serving.api import Tier, create_app
from lambdapipe.serving.auth import Access
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.settings import ServingSettings
from tests.unit.serving.loading import load

INJECTION = "gold' OR 1=1 --"
TOKEN = "unit-test-token"
ACCESS = Access.from_settings(ServingSettings(api_token=TOKEN))  # type: ignore[arg-type]
ENDPOINTS = [
    "/api/funnel",
    "/api/tiers",
    "/api/products/top",
    "/api/sessions",
    "/api/revenue",
    "/api/freshness",
    "/api/activity",
    "/health",
]
# Every string parameter of every endpoint.
STRING_PARAMETERS = [
    ("/api/funnel", "tier"),
    ("/api/funnel", "device"),
    ("/api/funnel", "start"),
    ("/api/tiers", "end"),
    ("/api/products/top", "metric"),
    ("/api/sessions", "group_by"),
    ("/api/sessions", "tier"),
    ("/api/sessions", "device"),
    ("/api/revenue", "interval"),
]


@pytest.fixture
def client(store: EmbeddedStore, batch: Batch) -> Iterator[TestClient]:
    load(store, batch)
    with TestClient(create_app(store, "embedded", ACCESS)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


@pytest.mark.parametrize("path", [p for p in ENDPOINTS if p.startswith("/api/")])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_api_needs_the_token(client: TestClient, path: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    client.headers.pop("Authorization")
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.text
    assert client.post("/api/sql", json={"sql": "SELECT 1"}, headers=headers).status_code == 401


def test_tier_literal_matches_the_contracts() -> None:
    assert set(get_args(Tier)) == set(enriched_tiers())


@pytest.mark.parametrize("path", ENDPOINTS)
def test_endpoints_answer(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.json()


def test_funnel_is_monotonic_and_matches_batch(client: TestClient, batch: Batch) -> None:
    funnel = client.get("/api/funnel").json()
    counts = [step["sessions"] for step in funnel["steps"]]
    assert counts == sorted(counts, reverse=True)
    assert 0 < funnel["sessions"] <= batch.sessions.num_rows


def test_top_products_respects_limit_and_metric(client: TestClient) -> None:
    rows = client.get("/api/products/top", params={"metric": "views", "limit": 3}).json()
    assert len(rows) == 3
    assert [r["views"] for r in rows] == sorted((r["views"] for r in rows), reverse=True)


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/funnel", {"start": "2025-13-01"}, "start"),
        ("/api/tiers", {"start": "2025-02-01", "end": "2025-01-01"}, "after end"),
        ("/api/revenue", {"start": "2020-01-01", "end": "2025-01-01"}, "longer than"),
        ("/api/products/top", {"limit": 0}, "limit"),
        ("/api/products/top", {"limit": 1000}, "limit"),
        ("/api/products/top", {"metric": "cost"}, "metric"),
        ("/api/activity", {"window_s": -1}, "window_s"),
        ("/api/sessions", {"group_by": "email"}, "group_by"),
    ],
)
def test_bad_parameters_are_400_with_a_message(
    client: TestClient, path: str, params: dict[str, object], message: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("path", "parameter"), STRING_PARAMETERS)
def test_injection_in_every_string_parameter_is_refused(
    client: TestClient, path: str, parameter: str
) -> None:
    response = client.get(path, params={parameter: INJECTION})
    assert response.status_code == 400
    assert parameter in response.json()["detail"]


def test_sql_endpoint_reads(client: TestClient, batch: Batch) -> None:
    response = client.post(
        "/api/sql", json={"sql": "SELECT count() AS n FROM user_events_realtime"}
    )
    assert response.status_code == 200
    assert response.json()["rows"] == [{"n": batch.events.num_rows}]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO dead_letters_realtime (raw) VALUES ('x')",
        "DROP TABLE user_events_realtime",
        "ALTER TABLE user_events_realtime DELETE WHERE 1",
        "TRUNCATE TABLE user_events_realtime",
        "SET readonly = 0",
        "CREATE TABLE x (a Int32) ENGINE = Memory",
    ],
)
def test_sql_endpoint_refuses_writes(client: TestClient, store: EmbeddedStore, sql: str) -> None:
    before = store.query_rows("SELECT count() AS n FROM user_events_realtime")
    response = client.post("/api/sql", json={"sql": sql})
    assert response.status_code == 403
    assert "only SELECT" in response.json()["detail"]
    assert store.query_rows("SELECT count() AS n FROM user_events_realtime") == before


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT file('/etc/hostname')",
        "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')",
        "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
        "SELECT 1 SETTINGS max_threads = 1",
    ],
)
def test_sql_endpoint_refuses_files_urls_and_settings(client: TestClient, sql: str) -> None:
    response = client.post("/api/sql", json={"sql": sql})
    assert response.status_code == 403, response.text


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE user_events_realtime",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
    ],
)
def test_sql_endpoint_escapes_are_refused(client: TestClient, sql: str) -> None:
    response = client.post("/api/sql", json={"sql": sql})
    if response.status_code == 200:
        # An inner SETTINGS readonly = 0 parses, but cannot lift the outer readonly = 1.
        assert response.json()["rows"] == [{"1": 1}]
    else:
        assert response.status_code in (400, 403)
    assert client.get("/api/tiers").status_code == 200


def test_metrics_and_dashboard(client: TestClient) -> None:
    client.get("/api/funnel")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'lambdapipe_serving_requests_total{route="/api/funnel",status="200"}' in metrics.text
    page = client.get("/")
    assert page.status_code == 200
    assert "setInterval(refresh, 2000)" in page.text
    assert "<script src" not in page.text
    assert client.get("/openapi.json").json()["paths"]["/api/funnel"]
