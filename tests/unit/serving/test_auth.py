"""Credentials: what the store endpoint and the API accept, and what they write to the audit log."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from bench.serving_sample import Batch
from lambdapipe.errors import Problem
from lambdapipe.serving.api import create_app
from lambdapipe.serving.audit import AuditLog
from lambdapipe.serving.auth import Access, Unauthenticated
from lambdapipe.serving.cli import check_secrets
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.http import arrow_stream_bytes
from lambdapipe.settings import ServingSettings

SERVING = ServingSettings(
    writer_password="w-secret-1",  # type: ignore[arg-type]
    reader_password="r-secret-2",  # type: ignore[arg-type]
    api_token="api-secret-3",  # type: ignore[arg-type]
)
ACCESS = Access.from_settings(SERVING)
SECRETS = ("w-secret-1", "r-secret-2", "api-secret-3")
WRITER = {"X-ClickHouse-User": "lambdapipe_writer", "X-ClickHouse-Key": "w-secret-1"}
READER = {"X-ClickHouse-User": "lambdapipe_reader", "X-ClickHouse-Key": "r-secret-2"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "role"),
    [
        ({"x-clickhouse-user": "lambdapipe_writer", "x-clickhouse-key": "w-secret-1"}, "writer"),
        ({"x-clickhouse-user": "lambdapipe_reader", "x-clickhouse-key": "r-secret-2"}, "reader"),
        ({k.lower(): v for k, v in basic("lambdapipe_reader", "r-secret-2").items()}, "reader"),
    ],
)
def test_store_users_sign_in(headers: dict[str, str], role: str) -> None:
    assert ACCESS.store_user(headers, {}).role == role


@pytest.mark.parametrize(
    ("headers", "query", "message"),
    [
        ({}, {}, "authentication required"),
        ({"x-clickhouse-user": "lambdapipe_reader", "x-clickhouse-key": "w-secret-1"}, {}, "wrong"),
        ({"x-clickhouse-user": "lambdapipe_reader"}, {}, "wrong"),
        ({"x-clickhouse-user": "default", "x-clickhouse-key": ""}, {}, "wrong"),
        ({"authorization": "Basic !!notbase64"}, {}, "authentication required"),
        # pragma: allowlist nextline secret (a test's wrong password)
        ({}, {"user": "lambdapipe_reader", "password": "r-secret-2"}, "in the URL are refused"),
        # pragma: allowlist nextline secret (a test's wrong password)
        ({**READER}, {"password": "r-secret-2"}, "in the URL are refused"),
    ],
)
def test_store_refuses(headers: dict[str, str], query: dict[str, str], message: str) -> None:
    with pytest.raises(Unauthenticated, match=message) as refused:
        ACCESS.store_user({k.lower(): v for k, v in headers.items()}, query)
    assert not any(secret in str(refused.value) for secret in SECRETS)


def test_an_empty_password_never_signs_in() -> None:
    open_access = Access.from_settings(ServingSettings())
    with pytest.raises(Unauthenticated):
        open_access.store_user(
            {"x-clickhouse-user": "lambdapipe_writer", "x-clickhouse-key": ""}, {}
        )
    with pytest.raises(Unauthenticated):
        open_access.api_caller("Bearer ")


@pytest.fixture
def client(store: EmbeddedStore, tmp_path: Path) -> Iterator[TestClient]:
    audit = AuditLog(tmp_path / "audit.jsonl")
    app = create_app(store, "embedded", ACCESS, store_endpoint=True, audit=audit)
    with TestClient(app) as test_client:
        yield test_client
    audit.close()


def audit_lines(tmp_path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def test_endpoint_roles_and_audit(
    client: TestClient, store: EmbeddedStore, batch: Batch, tmp_path: Path
) -> None:
    url = "/clickhouse/"
    insert = "INSERT INTO user_events_realtime (" + ", ".join(batch.events.column_names) + ")"
    body = arrow_stream_bytes(batch.events.slice(0, 100))
    query = {"query": f"{insert} FORMAT ArrowStream"}
    count = {"query": "SELECT count() FROM user_events_realtime"}

    unauthenticated = client.post(url, params=count)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Basic")
    assert client.post(url, params=query, content=body, headers=READER).status_code == 403
    assert client.post(url, params=query, content=body, headers=WRITER).status_code == 200
    assert client.post(url, params=count, headers=READER).text == "100\n"
    truncate = client.post(url, params={"query": "TRUNCATE TABLE user_events_realtime"},
                           headers=READER)  # fmt: skip
    assert truncate.status_code == 403
    assert "only SELECT" in truncate.text
    assert (
        client.post(url, params=count, headers=basic("lambdapipe_reader", "r-secret-2")).text
        == "100\n"
    )

    lines = audit_lines(tmp_path)
    assert [(line["who"], line["status"], line["allowed"]) for line in lines] == [
        (None, 401, False),
        ("lambdapipe_reader", 403, False),
        ("lambdapipe_writer", 200, True),
        ("lambdapipe_reader", 200, True),
        ("lambdapipe_reader", 403, False),
        ("lambdapipe_reader", 200, True),
    ]
    assert lines[2]["rows"] == 100 and lines[3]["rows"] == 1
    assert lines[4]["statement"] == "TRUNCATE TABLE user_events_realtime"
    text = (tmp_path / "audit.jsonl").read_text()
    assert not any(secret in text for secret in SECRETS)
    metrics = client.get("/metrics").text
    assert 'lambdapipe_serving_refused_total{route="/clickhouse/",status="403"} 2.0' in metrics
    assert 'lambdapipe_serving_refused_total{route="/clickhouse/",status="401"} 1.0' in metrics


def test_api_requests_are_audited(client: TestClient, tmp_path: Path) -> None:
    token = {"Authorization": "Bearer api-secret-3"}
    assert client.get("/api/tiers").status_code == 401
    assert client.get("/api/tiers", headers=token).status_code == 200
    assert client.post("/api/sql", json={"sql": "SELECT 1 AS a"}, headers=token).status_code == 200
    assert client.get("/health").status_code == 200  # open, and not audited
    lines = audit_lines(tmp_path)
    assert [(line["who"], line["route"], line["status"]) for line in lines] == [
        (None, "/api/tiers", 401),
        ("api", "/api/tiers", 200),
        ("api", "/api/sql", 200),
    ]
    assert lines[2]["rows"] == 1 and lines[2]["statement"] == "SELECT 1 AS a"


def test_serve_refuses_to_start_without_its_secrets() -> None:
    with pytest.raises(Problem, match=r"API_TOKEN.*WRITER_PASSWORD.*READER_PASSWORD") as missing:
        check_secrets(ServingSettings(), endpoint=True)
    assert "secrets.env" in missing.value.hint
    with pytest.raises(Problem, match="API_TOKEN"):
        check_secrets(ServingSettings(writer_password="w", reader_password="r"), endpoint=True)  # type: ignore[arg-type]
    check_secrets(SERVING, endpoint=True)
    check_secrets(ServingSettings(api_token="t"), endpoint=False)  # type: ignore[arg-type]
