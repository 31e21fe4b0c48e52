"""Dimensions in PostgreSQL and their change capture by Debezium, on the real stack."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from lambdapipe.generator.population import users, watched
from lambdapipe.ingest import cdc
from lambdapipe.ingest.churn import ChurnResult, churn
from lambdapipe.ingest.db import connect_app
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.reconcile.truth import read_churn_log
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings
from lambdapipe.speed.dimensions import Dimensions
from lambdapipe.speed.sink import ServingSink
from lambdapipe.topics import quiet
from tests.stacks import LIB

pytestmark = pytest.mark.integration

N_USERS, N_PRODUCTS, SEED = 100_000, 10_000, 7


class CdcTopic:
    """Reads a CDC topic from a position onwards: (key, value or None, kafka timestamp ms)."""

    def __init__(self, settings: Settings, table: str, from_end: bool = False) -> None:
        self.name = cdc.topic(settings, table)
        self.consumer = Consumer(
            quiet({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"t-{uuid.uuid4()}"})
        )
        deadline = time.monotonic() + 120  # Connect creates the topic with its first record
        while not (partitions := self._partitions()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert partitions, f"topic {self.name} never appeared"
        assignment = []
        for p in partitions:
            low, high = self._watermarks(p)
            assignment.append(TopicPartition(self.name, p, high if from_end else low))
        self.consumer.assign(assignment)

    def _watermarks(self, partition: int) -> tuple[int, int]:
        """Watermarks, retried while a new topic's leaders settle."""
        for _ in range(60):
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(self.name, partition), timeout=10
                )
                return low, high
            except KafkaException:
                time.sleep(0.5)
        raise AssertionError(f"no leader for {self.name}[{partition}]")

    def _partitions(self) -> list[int]:
        topic = self.consumer.list_topics(self.name, timeout=10).topics.get(self.name)
        return list(topic.partitions) if topic is not None and topic.error is None else []

    def read(self, until: Any, timeout_s: float = 120) -> list[tuple[Any, Any, int]]:
        """Read until `until(messages)` is true (or the timeout)."""
        messages: list[tuple[Any, Any, int]] = []
        deadline = time.monotonic() + timeout_s
        while not until(messages) and time.monotonic() < deadline:
            for m in self.consumer.consume(10_000, timeout=0.5):
                if m.error() is None:
                    value = orjson.loads(m.value()) if m.value() is not None else None
                    messages.append((orjson.loads(m.key()), value, m.timestamp()[1]))
        return messages

    def close(self) -> None:
        self.consumer.close()


def table_digest(settings: Settings) -> str:
    with connect_app(settings) as conn:
        rows = conn.execute(
            "SELECT md5(string_agg(u::text, ',' ORDER BY user_id)) FROM users u"
        ).fetchone()
    return hashlib.sha256(str(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def dims(stack: Stack) -> Iterator[Settings]:
    """The population loaded and the connector registered (its snapshot taken)."""
    settings = stack.settings
    load_dimensions(settings, N_USERS, N_PRODUCTS, SEED)
    cdc.register(settings)
    yield settings
    cdc.unregister(settings)


def test_snapshot_has_exactly_the_loaded_rows(dims: Settings) -> None:
    for table, key, expected in (
        ("users", "user_id", N_USERS),
        ("products", "product_id", N_PRODUCTS),
    ):
        topic = CdcTopic(dims, table)
        messages = topic.read(lambda ms, n=expected: len(ms) >= n)
        topic.close()
        snapshot = [v for _, v, _ in messages if v and v["op"] == "r"]
        assert len(snapshot) == expected
        with connect_app(dims) as conn:
            ids = {str(r[0]) for r in conn.execute(f"SELECT {key} FROM {table}").fetchall()}
        assert {v["after"][key] for v in snapshot} == ids
        if table == "users":  # the first generated user arrived as generated
            first = users(1, SEED)[0]
            (row,) = [v["after"] for v in snapshot if v["after"]["user_id"] == first.user_id]
            assert (row["tier"], row["email"]) == (first.tier, first.email)


def test_snapshot_rows_carry_precise_types(dims: Settings) -> None:
    topic = CdcTopic(dims, "products")
    (key, value, _), *_ = topic.read(lambda ms: len(ms) >= 1)
    topic.close()
    assert set(key) == {"product_id"}
    assert isinstance(value["after"]["price"], str) and "." in value["after"]["price"]
    assert value["source"]["lsn"] > 0


def test_second_load_changes_nothing(dims: Settings) -> None:
    before = table_digest(dims)
    results = load_dimensions(dims, N_USERS, N_PRODUCTS, SEED)
    assert [r.inserted for r in results] == [0, 0]
    assert table_digest(dims) == before


def test_tier_updates_each_reach_kafka(dims: Settings) -> None:
    topic = CdcTopic(dims, "users", from_end=True)
    result = churn(dims, rate=50, changes=400, seed=1)
    tier_changes = {(key, at) for table, key, at in result.changes if table == "users"}
    assert result.counts["tier"] >= 100
    messages = topic.read(lambda ms: len(ms) >= len(tier_changes), timeout_s=60)
    topic.close()
    seen = {(v["after"]["user_id"], v["after"]["updated_at"]) for _, v, _ in messages if v}
    assert {(k, _iso(at)) for k, at in tier_changes} <= seen


def test_the_churn_log_has_each_tier_move_at_the_commit_time_debezium_reports(
    dims: Settings, tmp_path: Path
) -> None:
    """The truth re-tiers events by the logged instant, the batch by `source.ts_ms`: equal."""
    topic = CdcTopic(dims, "users", from_end=True)
    log = tmp_path / "churn.jsonl"
    result = churn(dims, rate=0, changes=80, seed=5, watch_share=0.05, log=log)
    assert len(result.tier_moves) >= 20
    assert all(watched(user_id, 0.05) for user_id, *_ in result.tier_moves)
    logged = {(u, new, round(at.timestamp() * 1000)) for u, _, new, at in result.tier_moves}

    def reported(ms: list[tuple[Any, Any, int]]) -> set[tuple[str, str, int]]:
        return {
            (v["after"]["user_id"], v["after"]["tier"], v["source"]["ts_ms"])
            for _, v, _ in ms
            if v and v["op"] == "u" and v["before"]["tier"] != v["after"]["tier"]
        }

    messages = topic.read(lambda ms: logged <= reported(ms), timeout_s=60)
    topic.close()
    assert logged <= reported(messages)
    timelines = read_churn_log(log)  # what reconcile reads: the same moves, at the same instants
    assert sum(len(t.at_ms) for t in timelines.values()) == len(result.tier_moves)
    assert {(u, t.tiers[-1], t.at_ms[-1]) for u, t in timelines.items() if t.at_ms} <= logged


def test_delete_produces_a_delete_event_and_a_tombstone(dims: Settings) -> None:
    topic = CdcTopic(dims, "users", from_end=True)
    with connect_app(dims) as conn:
        (victim,) = conn.execute("SELECT user_id::text FROM users LIMIT 1").fetchone()  # type: ignore[misc]
        conn.execute("DELETE FROM users WHERE user_id = %s", (victim,))
        conn.commit()
    messages = topic.read(lambda ms: sum(1 for k, _, _ in ms if k["user_id"] == victim) >= 2)
    topic.close()
    mine = [(v["op"] if v else None) for k, v, _ in messages if k["user_id"] == victim]
    assert mine == ["d", None]


def test_connect_killed_during_churn_loses_no_change(dims: Settings, stack: Stack) -> None:
    topic = CdcTopic(dims, "users", from_end=True)
    products_topic = CdcTopic(dims, "products", from_end=True)
    outcome: list[ChurnResult] = []
    worker = threading.Thread(
        target=lambda: outcome.append(churn(dims, rate=40, duration_s=20, seed=2)), daemon=True
    )
    worker.start()
    time.sleep(5)
    connect = next(s for s in stack.services if s.name == "connect")
    connect.process.kill()  # kill -9 mid-stream
    stack.up(["connect"], progress=lambda line: None)
    worker.join(60)
    result = outcome[0]
    wanted = {
        t: {(k, _iso(at)) for table, k, at in result.changes if table == t}
        for t in ("users", "products")
    }
    found: dict[str, list[tuple[Any, Any, int]]] = {}
    for name, reader in (("users", topic), ("products", products_topic)):
        key = "user_id" if name == "users" else "product_id"
        found[name] = reader.read(
            lambda ms, k=key, w=wanted[name]: (
                w
                <= {(v["after"][k], v["after"]["updated_at"]) for _, v, _ in ms if v and v["after"]}
            ),
            timeout_s=120,
        )
        reader.close()
        seen = {
            (v["after"][key], v["after"]["updated_at"])
            for _, v, _ in found[name]
            if v and v["after"]
        }
        missing = wanted[name] - seen
        assert not missing, f"{len(missing)} committed {name} changes never reached Kafka"
        # redelivered changes after the crash are exact replays, recognisable by their LSN
        by_lsn: dict[tuple[Any, Any], list[Any]] = {}
        for k, v, _ in found[name]:
            if v:
                by_lsn.setdefault((v["source"]["lsn"], str(k)), []).append(v["after"])
        assert all(len({orjson.dumps(a) for a in afters}) == 1 for afters in by_lsn.values())


def test_heartbeats_let_the_idle_slot_catch_up(dims: Settings) -> None:
    lag: int | None = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = cdc.slot_lag(dims)
        assert state is not None
        lag = state[1]
        if lag < 64 * 1024:
            break
        time.sleep(1)
    assert lag is not None and lag < 64 * 1024, f"slot holds {lag} bytes of WAL while idle"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # pragma: allowlist nextline secret (a test's wrong password)
        ({"LAMBDAPIPE_POSTGRES__DEBEZIUM_PASSWORD": "wrong"}, "password authentication failed"),
        ({"LAMBDAPIPE_POSTGRES__PORT": "1"}, "cannot connect to PostgreSQL"),
    ],
)
def test_cdc_register_explains_bad_database_settings(
    dims: Settings, override: dict[str, str], message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDAPIPE_")}
    env.update(
        LAMBDAPIPE_HOME=str(dims.home),
        LAMBDAPIPE_LIB_HOME=str(LIB),
        LAMBDAPIPE_PORT_OFFSET=str(dims.port_offset),
        **override,
    )
    result = subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", "cdc", "register"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())  # undo the console's wrapping
    assert result.returncode == 1, output
    assert message in output and "Traceback" not in output


def user_count(settings: Settings) -> int:
    with connect_app(settings) as conn:
        row = conn.execute("SELECT count(*) FROM users").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_churn_runs_again_on_the_same_database(dims: Settings) -> None:
    """A second demo on kept data: load again, churn again with the same seed, no collision."""
    runs = []
    for _ in range(2):
        load_dimensions(dims, N_USERS, N_PRODUCTS, SEED)  # as every `lambdapipe demo` does
        before = user_count(dims)
        runs.append(churn(dims, rate=0, changes=300, seed=SEED))
        assert user_count(dims) == before + runs[-1].counts["new_user"]
    first, second = runs
    assert first.counts["new_user"] > 0
    assert second.counts["new_user"] > 0
    assert second.total > 0
    assert first.changes != second.changes  # a rerun does not replay the first run


@pytest.fixture
def serving(dims: Settings, stack: Stack) -> Iterator[Settings]:
    """The stack's own `lambdapipe serve` for one test (stopped after: other modules start it
    with data directories of their own)."""
    stack.up(["serving"], progress=lambda line: None)
    try:
        yield dims
    finally:
        stack.down(["serving"], progress=lambda line: None)


def _catch_up(follower: Dimensions, sink: ServingSink) -> None:
    """What the speed job does before each micro-batch, until the topics are read to their end."""
    while follower.refresh():
        pass
    follower.write_changes(lambda table, rows: sink.write(table, rows))


def _differences(store: Any, settings: Settings) -> tuple[int, int]:
    """Products (id, name, category, price) and users (id, tier) that PostgreSQL and the store's
    live dimension rows do not share."""
    with connect_app(settings) as conn:
        products = {
            (str(p), n, str(c), str(pr))
            for p, n, c, pr in conn.execute(
                "SELECT product_id, name, category, price FROM products"
            )
        }
        tiers = {(str(u), t) for u, t in conn.execute("SELECT user_id, tier FROM users")}
    stored = {
        (str(r["product_id"]), r["name"], r["category"], str(r["price"]))
        for r in store.query_rows(
            "SELECT product_id, name, category, price FROM products_dim FINAL WHERE NOT deleted"
        )
    }
    stored_tiers = {
        (str(r["user_id"]), r["tier"])
        for r in store.query_rows("SELECT user_id, tier FROM users_dim FINAL WHERE NOT deleted")
    }
    return len(products ^ stored), len(tiers ^ stored_tiers)


def test_a_renamed_product_reaches_the_serving_dimension(serving: Settings) -> None:
    """PostgreSQL -> Debezium -> the speed job's dimension follower -> products_dim."""
    with connect_app(serving) as conn:
        (product_id,) = conn.execute("SELECT product_id::text FROM products LIMIT 1").fetchone()  # type: ignore[misc]
    follower = Dimensions(serving)
    one = "SELECT name, version, deleted FROM products_dim FINAL WHERE product_id = {p:UUID}"
    with Resources(serving).store() as store:
        sink = ServingSink(store, retry_s=30)
        _catch_up(follower, sink)  # the snapshot and every change this module made
        assert _differences(store, serving) == (0, 0)
        (before,) = store.query_rows(one, {"p": product_id})
        with connect_app(serving) as conn:
            conn.execute(
                "UPDATE products SET name = name || ' (renamed)' WHERE product_id = %s",
                (product_id,),
            )
            conn.commit()
        deadline = time.monotonic() + 60
        while (after := store.query_rows(one, {"p": product_id})[0]) == before:
            assert time.monotonic() < deadline, "the rename never reached products_dim"
            time.sleep(0.5)
            _catch_up(follower, sink)
    follower.close()
    assert after["name"] == f"{before['name']} (renamed)" and not after["deleted"]
    assert after["version"] > before["version"]  # the change's LSN


def _iso(value: str) -> str:
    """Debezium's ISO form of a timestamptz: UTC, microseconds, 'Z'."""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
