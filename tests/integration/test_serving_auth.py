"""Authentication, roles and the audit log against a real `lambdapipe serve` (issue 18)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from bench.serving_sample import make_batch
from lambdapipe.resources import Resources
from lambdapipe.serving.auth import api_headers
from lambdapipe.serving.http import HttpStore
from lambdapipe.settings import Settings, secrets_file

from .test_serving_http import serve  # noqa: F401  (module-scoped serve fixture)

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# A reader's attempts that must change nothing: writes, DDL, settings, files, URLs, servers.
REFUSED_FOR_READERS = [
    "INSERT INTO dead_letters_realtime (raw) SELECT 'x'",
    "CREATE TABLE intruder (a Int32) ENGINE = MergeTree ORDER BY a",
    "TRUNCATE TABLE user_events_realtime",
    "ALTER TABLE user_events_realtime DELETE WHERE 1",
    "DELETE FROM user_events_realtime WHERE 1",
    "DROP TABLE user_events_realtime",
    "SET readonly = 0",
    "SELECT count() FROM user_events_realtime SETTINGS readonly = 0",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')",
    "SELECT * FROM remote('127.0.0.1:1', system.one)",
    "INSERT INTO FUNCTION file('leak.csv', CSV) SELECT 1",
]


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the local profile generated for this stack."""
    lines = secrets_file(settings.home).read_text().splitlines()
    return [line.partition("=")[2] for line in lines if "=" in line]


def audit_lines(settings: Settings) -> list[str]:
    path = settings.log_dir / "audit.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def credentials(settings: Settings, role: str) -> dict[str, str]:
    serving = settings.serving
    user, password = (
        (serving.writer_user, serving.writer_password)
        if role == "writer"
        else (serving.reader_user, serving.reader_password)
    )
    return {"X-ClickHouse-User": user, "X-ClickHouse-Key": password.get_secret_value()}


@pytest.fixture
def loaded(serve: Settings) -> Iterator[int]:  # noqa: F811
    """1,000 events written by the writer, as the speed layer writes them; their count."""
    batch = make_batch(1_000, seed=31)
    with Resources(serve).store() as writer:
        writer.execute("TRUNCATE TABLE user_events_realtime")
        assert writer.insert_arrow("user_events_realtime", batch.events, "auth:1:e") == 1_000
    yield batch.events.num_rows


def data_routes(settings: Settings) -> list[tuple[str, str]]:
    """Every route of the live OpenAPI spec (they all reach data), and the store endpoint."""
    spec = httpx.get(f"{settings.serving.endpoint}/openapi.json").json()
    routes = [(method.upper(), path) for path, item in spec["paths"].items() for method in item]
    assert ("POST", "/api/sql") in routes and ("GET", "/api/funnel") in routes
    return [
        *[r for r in routes if r[1] != "/health"],
        ("GET", "/clickhouse/"),
        ("POST", "/clickhouse/"),
    ]


def test_every_data_route_needs_credentials(serve: Settings) -> None:  # noqa: F811
    base = serve.serving.endpoint
    wrong = {"Authorization": "Bearer not-the-token", "X-ClickHouse-User": "lambdapipe_reader"}
    for method, path in data_routes(serve):
        for headers in ({}, wrong):
            response = httpx.request(
                method, base + path, headers=headers, params={"query": "SELECT 1"},
                json={"sql": "SELECT 1"} if method == "POST" else None,
            )  # fmt: skip
            assert response.status_code == 401, (method, path, response.text)
            assert "WWW-Authenticate" in response.headers
    in_url = {
        "query": "SELECT 1",
        **dict(zip(("user", "password"), credentials(serve, "reader").values(), strict=True)),
    }
    refused = httpx.get(f"{base}/clickhouse/", params=in_url)
    assert refused.status_code == 401 and "in the URL are refused" in refused.text
    assert httpx.get(f"{base}/health").status_code == 200
    assert httpx.get(f"{base}/api/tiers", headers=api_headers(serve.serving)).status_code == 200


def test_a_reader_changes_nothing(serve: Settings, loaded: int) -> None:  # noqa: F811
    url = serve.serving.store_url
    reader = credentials(serve, "reader")
    count = {"query": "SELECT count() FROM user_events_realtime"}
    tables = {"query": "SELECT count() FROM system.tables WHERE database = 'default'"}
    before = httpx.post(url, params=tables, headers=reader).text
    for sql in REFUSED_FOR_READERS:
        response = httpx.post(url, params={"query": sql}, headers=reader)
        assert response.status_code == 403, (sql, response.text)
        assert httpx.post(url, params=count, headers=reader).text == f"{loaded}\n"
    assert httpx.post(url, params=tables, headers=reader).text == before
    leak = httpx.post(url, params={"query": "SELECT * FROM file('/etc/hostname', 'LineAsString')"},
                      headers=credentials(serve, "writer"))  # fmt: skip
    assert leak.status_code == 403, "the writer reads no file either"
    batch = make_batch(10, seed=32)
    with HttpStore(url, reader["X-ClickHouse-User"], serve.serving.reader_password) as store:
        with pytest.raises(Exception, match="reader"):
            store.insert_arrow("user_events_realtime", batch.events, "auth:reader:e")
        assert store.query_rows("SELECT count() AS n FROM user_events_realtime") == [{"n": loaded}]
    metrics = httpx.get(f"{serve.serving.endpoint}/metrics").text
    assert 'lambdapipe_serving_refused_total{route="/clickhouse/",status="403"}' in metrics


def test_clickhouse_connect_reads_as_a_reader(serve: Settings, loaded: int) -> None:  # noqa: F811
    clickhouse_connect = pytest.importorskip("clickhouse_connect")
    serving = serve.serving
    client = clickhouse_connect.get_client(
        host=serving.host,
        port=serving.port,
        username=serving.reader_user,
        password=serving.reader_password.get_secret_value(),
        proxy_path="/clickhouse",
    )
    try:
        assert client.query("SELECT count() FROM user_events_realtime").result_rows == [(loaded,)]
        with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="reader"):
            client.command("TRUNCATE TABLE user_events_realtime")
        assert client.query("SELECT count() FROM user_events_realtime").result_rows == [(loaded,)]
    finally:
        client.close()
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError):
        clickhouse_connect.get_client(
            host=serving.host, port=serving.port, username=serving.reader_user,
            # pragma: allowlist nextline secret (a test's wrong password)
            password="wrong", proxy_path="/clickhouse",
        )  # fmt: skip


def test_one_audit_line_per_request_and_no_secret(serve: Settings, loaded: int) -> None:  # noqa: F811
    serving, before = serve.serving, len(audit_lines(serve))
    url = serving.store_url
    token = api_headers(serving)
    requests = [
        httpx.get(f"{serving.endpoint}/api/funnel"),
        httpx.get(f"{serving.endpoint}/api/funnel", headers=token),
        httpx.post(f"{serving.endpoint}/api/sql", json={"sql": "SELECT 1 AS a"}, headers=token),
        httpx.post(url, params={"query": "SELECT count() FROM user_events_realtime"},
                   headers=credentials(serve, "reader")),
        httpx.post(url, params={"query": "DROP TABLE user_events_realtime"},
                   headers=credentials(serve, "reader")),
        httpx.post(url, params={"query": "SELECT 1"}),
    ]  # fmt: skip
    httpx.get(f"{serving.endpoint}/health")  # not audited: no data
    lines = audit_lines(serve)[before:]
    entries = [orjson.loads(line) for line in lines]
    assert [(e["who"], e["route"], e["status"], e["allowed"]) for e in entries] == [
        (None, "/api/funnel", 401, False),
        ("api", "/api/funnel", 200, True),
        ("api", "/api/sql", 200, True),
        (serving.reader_user, "/clickhouse/", 200, True),
        (serving.reader_user, "/clickhouse/", 403, False),
        (None, "/clickhouse/", 401, False),
    ]
    assert [r.status_code for r in requests] == [e["status"] for e in entries]
    assert entries[3]["rows"] == 1 and entries[4]["statement"] == "DROP TABLE user_events_realtime"
    assert all(e["at"] for e in entries)


def test_no_secret_in_any_log(serve: Settings, loaded: int) -> None:  # noqa: F811
    """Every file under the stack's logs dir and the tests' artifacts, for every secret."""
    secrets = secrets_of(serve)
    assert len(secrets) >= 3 and serve.serving.api_token.get_secret_value() in secrets
    files = [p for root in (serve.log_dir, ARTIFACTS) if root.exists() for p in root.rglob("*")]
    logs = [p for p in files if p.is_file()]
    assert any(p.name == "audit.jsonl" for p in logs) and any(p.name == "serving.log" for p in logs)
    for path in logs:
        text = path.read_bytes()
        leaked = [s for s in secrets if s.encode() in text]
        assert not leaked, f"{path} holds a secret"
