"""The local stack, service by service, against the real engines."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from lambdapipe.errors import Problem
from lambdapipe.ingest.cdc import DEBEZIUM_POSTGRES
from lambdapipe.resources import Resources
from lambdapipe.runtime.services.postgres import Postgres
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings
from lambdapipe.topics import admin_client, ensure_topics, quiet

pytestmark = pytest.mark.integration


def produce(settings: Settings, topic: str, values: list[bytes]) -> int:
    """Produce with acks=all and idempotence; return how many were acknowledged."""
    acked = []
    producer = Producer(
        quiet(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
            }
        )
    )
    for i, value in enumerate(values):
        producer.produce(
            topic,
            value=value,
            key=str(i % 7).encode(),
            on_delivery=lambda err, msg: acked.append(msg) if err is None else None,
        )
    producer.flush(30)
    return len(acked)


def consume_all(
    settings: Settings, topic: str, expected: int, timeout_s: float = 30
) -> list[bytes]:
    consumer = Consumer(
        quiet(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": f"test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=1):
            if msg.error() is None:
                values.append(msg.value())
    consumer.close()
    return values


def new_topic(settings: Settings, partitions: int = 3) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    admin = admin_client(settings)
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(15)
    return name


def test_kafka_round_trip_with_acks_all_and_idempotence(settings: Settings) -> None:
    topic = new_topic(settings)
    values = [f"message-{i}".encode() for i in range(2000)]
    assert produce(settings, topic, values) == len(values)
    assert sorted(consume_all(settings, topic, len(values))) == sorted(values)


def test_lambdapipe_topics_exist(settings: Settings) -> None:
    topics = admin_client(settings).list_topics(timeout=10).topics
    for name in (
        settings.kafka.events_topic,
        settings.kafka.transactions_topic,
        settings.kafka.dlq_topic,
        settings.kafka.accepted,
    ):
        assert name in topics
        assert len(topics[name].partitions) == settings.kafka.partitions


def test_topics_with_more_partitions_are_used_and_fewer_refused(settings: Settings) -> None:
    n = settings.kafka.partitions
    more, fewer = new_topic(settings, n + 2), new_topic(settings, 1)

    def with_events_topic(name: str) -> Settings:
        kafka = settings.kafka.model_copy(update={"events_topic": name})
        return settings.model_copy(update={"kafka": kafka})

    ensure_topics(with_events_topic(more), timeout_s=20)  # returns at once, changes nothing
    assert (
        len(admin_client(settings).list_topics(more, timeout=10).topics[more].partitions) == n + 2
    )
    with pytest.raises(Problem, match=f"{fewer} has 1 partitions, fewer than the {n}"):
        ensure_topics(with_events_topic(fewer), timeout_s=20)


def test_postgres_is_ready_for_logical_replication(settings: Settings) -> None:
    with Postgres(settings).connect() as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert int(conn.execute("SHOW max_replication_slots").fetchone()[0]) >= 4  # type: ignore[index]
        roles = dict(
            conn.execute(
                "SELECT rolname, rolreplication FROM pg_roles WHERE rolname = ANY(%s)",
                (
                    [
                        settings.postgres.app_user,
                        settings.postgres.debezium_user,
                        settings.postgres.catalog_user,
                    ],
                ),
            ).fetchall()
        )
    assert roles == {
        settings.postgres.app_user: False,
        settings.postgres.debezium_user: True,
        settings.postgres.catalog_user: False,
    }


def test_each_role_logs_in_with_its_own_secret(settings: Settings) -> None:
    pg = settings.postgres
    for user, password, db in (
        (pg.app_user, pg.app_password, pg.app_database),
        (pg.debezium_user, pg.debezium_password, pg.app_database),
        (pg.catalog_user, pg.catalog_password, pg.catalog_database),
    ):
        with psycopg.connect(
            host=pg.host, port=pg.port, user=user, dbname=db, password=password.get_secret_value()
        ) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (user,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=pg.host,
            port=pg.port,
            user=pg.app_user,
            dbname=pg.app_database,
            # pragma: allowlist nextline secret (a test's wrong password)
            password="wrong",
        )


def test_kafka_connect_lists_the_debezium_postgres_plugin(settings: Settings) -> None:
    plugins = httpx.get(f"{settings.connect.endpoint}/connector-plugins", timeout=10).json()
    assert DEBEZIUM_POSTGRES in {p["class"] for p in plugins}


def test_apicurio_registers_and_serves_a_schema(settings: Settings) -> None:
    subject = f"test-{uuid.uuid4().hex[:8]}-value"
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"id": {"type": "string"}},
    }
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    created = httpx.post(
        f"{settings.registry.ccompat}/subjects/{subject}/versions",
        json={"schemaType": "JSON", "schema": json.dumps(schema)},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 200, created.text
    fetched = httpx.get(
        f"{settings.registry.ccompat}/subjects/{subject}/versions/latest", timeout=10
    )
    assert json.loads(fetched.json()["schema"]) == schema
    assert fetched.json()["id"] == created.json()["id"]


def test_s3proxy_round_trips_an_object(settings: Settings) -> None:
    client = Resources(settings).s3_client()
    key = f"test/{uuid.uuid4()}.bin"
    body = bytes(range(256)) * 4096
    client.put_object(Bucket=settings.s3.bucket, Key=key, Body=body)
    assert client.get_object(Bucket=settings.s3.bucket, Key=key)["Body"].read() == body
    listed = client.list_objects_v2(Bucket=settings.s3.bucket, Prefix="test/")
    assert key in {o["Key"] for o in listed["Contents"]}


def test_prometheus_scrapes_the_components(settings: Settings) -> None:
    deadline = time.monotonic() + 60
    healthy: set[str] = set()
    while time.monotonic() < deadline:
        targets = httpx.get(f"{settings.prometheus.endpoint}/api/v1/targets", timeout=5).json()
        healthy = {
            t["labels"]["job"] for t in targets["data"]["activeTargets"] if t["health"] == "up"
        }
        if {"prometheus", "kafka", "kafka-connect"} <= healthy:
            break
        time.sleep(1)
    assert {"prometheus", "kafka", "kafka-connect"} <= healthy


def test_status_reports_every_service_running(stack: Stack) -> None:
    # the pipeline's own processes are optional: `up` alone does not start them
    optional = {s.name for s in stack.services if s.optional}
    statuses = [s for s in stack.status() if s.name not in optional]
    assert [s.name for s in statuses] == [
        "postgres",
        "s3proxy",
        "kafka-0",
        "connect",
        "apicurio",
        "prometheus",
    ]
    for s in statuses:
        assert s.state == "running", s
        assert s.pid and s.rss_mb and s.rss_mb > 1
        assert s.ports


def test_up_twice_starts_nothing(stack: Stack) -> None:
    lines: list[str] = []
    assert stack.up(progress=lines.append) == []
    assert all("already running" in line for line in lines)


def test_data_survives_down_and_up(stack: Stack) -> None:
    settings = stack.settings
    pg = settings.postgres
    topic = new_topic(settings)
    produce(settings, topic, [b"before-restart"])
    dsn = dict(
        host=pg.host,
        port=pg.port,
        user=pg.app_user,
        dbname=pg.app_database,
        password=pg.app_password.get_secret_value(),
    )
    with psycopg.connect(**dsn, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("CREATE TABLE IF NOT EXISTS restart_probe (note text)")
        conn.execute("INSERT INTO restart_probe VALUES ('before-restart')")

    stopped = stack.down(progress=lambda line: None)
    assert len(stopped) == 6
    assert all(s.state == "stopped" for s in stack.status())
    assert len(stack.up(progress=lambda line: None)) == 6

    with psycopg.connect(**dsn) as conn:  # type: ignore[arg-type]
        assert conn.execute("SELECT note FROM restart_probe").fetchall() == [("before-restart",)]
    assert consume_all(settings, topic, 1) == [b"before-restart"]
