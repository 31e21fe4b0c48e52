"""The same DDL and queries through the HTTP adapter, against a real `lambdapipe serve` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bench.serving_sample import make_batch
from lambdapipe.resources import Resources
from lambdapipe.serving import queries
from lambdapipe.serving.ddl import MATERIALIZED_VIEWS, TABLES
from lambdapipe.serving.http import HttpStore
from lambdapipe.serving.store import Refused
from lambdapipe.settings import Settings
from tests.stacks import serve_alone

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    yield from serve_alone(tmp_path_factory.mktemp("serve-home"))


@pytest.fixture
def store(serve: Settings) -> Iterator[HttpStore]:
    """The writer's store, every table emptied."""
    with Resources(serve).store() as remote:
        assert isinstance(remote, HttpStore)
        for table in TABLES:
            remote.execute(f"TRUNCATE TABLE {table.name}")
        for view in MATERIALIZED_VIEWS:
            remote.execute(f"TRUNCATE TABLE {view.target}")
        yield remote


def test_schema_is_created_by_serve_and_idempotent(store: HttpStore) -> None:
    store.create_schema(30)
    names = {row["name"] for row in store.query_rows("SELECT name FROM system.tables")}
    assert {t.name for t in TABLES} | {v.name for v in MATERIALIZED_VIEWS} <= names


def test_arrow_insert_with_token_is_exactly_once(store: HttpStore) -> None:
    batch = make_batch(5_000, seed=11)
    for _ in range(3):
        store.insert_arrow("user_events_realtime", batch.events, "q1:7:user_events_realtime")
        store.insert_arrow("user_sessions_realtime", batch.sessions, "q1:7:user_sessions_realtime")
    count = store.query_rows("SELECT count() AS n FROM user_events_realtime")
    assert count == [{"n": batch.events.num_rows}]
    funnel_sessions = store.query_rows(
        "SELECT sum(a.sessions) AS n FROM user_tier_performance_agg AS a"
    )
    assert funnel_sessions == [{"n": batch.sessions.num_rows}]


def test_dashboard_queries_run_over_http(store: HttpStore) -> None:
    batch = make_batch(5_000, seed=12)
    store.insert_arrow("user_events_realtime", batch.events, "q2:0:e")
    store.insert_arrow("transactions_realtime", batch.transactions, "q2:0:t")
    store.insert_arrow("user_sessions_realtime", batch.sessions, "q2:0:s")
    today = datetime.now(UTC).date()
    start = today - timedelta(days=1)
    assert queries.funnel(store, start, today)["sessions"] > 0
    assert queries.tier_performance(store, start, today)
    assert len(queries.top_products(store, start, today, "revenue", 5)) == 5
    assert queries.sessions(store, start, today, "browser")
    assert queries.revenue(store, start, today, "minute")
    assert queries.freshness(store)[1]["rows"] == batch.events.num_rows
    assert queries.activity(store, 60, 30)["events_per_s"] > 0


def test_readonly_over_http(store: HttpStore, serve: Settings) -> None:
    assert store.query_readonly("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    with pytest.raises(Refused):
        store.query_readonly("DROP TABLE user_events_realtime")
    writer = {"X-ClickHouse-User": serve.serving.writer_user}
    writer["X-ClickHouse-Key"] = serve.serving.writer_password.get_secret_value()
    response = httpx.post(
        store.url,
        params={"query": "DROP TABLE user_events_realtime", "readonly": "1"},
        headers=writer,
    )
    assert response.status_code == 403


def test_query_sql_cli_prints_json(serve: Settings) -> None:
    port = str(serve.serving.port)
    # the serve process's home: the CLI reads the reader's password from its secrets.env
    env = {**os.environ, "LAMBDAPIPE_HOME": str(serve.home), "LAMBDAPIPE_SERVING__PORT": port}
    command = [sys.executable, "-c", "from lambdapipe.serving.cli import app; app()"]
    done = subprocess.run(
        [*command, "query", "sql", "SELECT 40 + 2 AS answer"], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert b'"answer": 42' in done.stdout
    refused = subprocess.run(
        [*command, "query", "sql", "DROP TABLE user_events_realtime"],
        env=env,
        capture_output=True,
    )
    assert refused.returncode == 1
    assert b"only SELECT" in refused.stderr
