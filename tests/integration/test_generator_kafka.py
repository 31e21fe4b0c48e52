"""The generator into a real Kafka: per-user partitioning and every compression codec."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

from lambdapipe.generator.run import RunConfig, plan, run
from lambdapipe.generator.sinks import transactions_path
from lambdapipe.settings import Settings
from lambdapipe.topics import admin_client, quiet

pytestmark = pytest.mark.integration
EVENTS = 4_000


def _topics(settings: Settings) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = (f"gen-events-{suffix}", f"gen-transactions-{suffix}")
    admin = admin_client(settings)
    for future in admin.create_topics([NewTopic(n, 6, 1) for n in names]).values():
        future.result(15)
    return names


def _consume(settings: Settings, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    consumer = Consumer(
        quiet(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": f"gen-test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    records: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + 60
    while len(records) < expected and time.monotonic() < deadline:
        for message in consumer.consume(1_000, timeout=1):
            if message.error() is None:
                records.append((message.partition(), message.key(), message.value()))
    consumer.close()
    return records


def _config(settings: Settings, sink: str, compression: str, seed: int) -> RunConfig:
    return plan(
        rate=0,
        duration=None,
        events=EVENTS,
        seed=seed,
        sink=sink,
        start="2026-03-02T00:00:00Z",
        users=500,
        products=200,
        compression=compression,
        faults="duplicate=0.01,out_of_order=0.01",
    )


@pytest.mark.parametrize("compression", ["none", "snappy", "lz4", "zstd"])
def test_codec_round_trips_and_users_stay_in_one_partition(
    settings: Settings, tmp_path: Path, compression: str
) -> None:
    events_topic, transactions_topic = _topics(settings)
    config = replace(
        _config(settings, "kafka", compression, seed=3),
        kafka={
            "bootstrap": settings.kafka.bootstrap,
            "events_topic": events_topic,
            "transactions_topic": transactions_topic,
        },
    )
    summary = run(config)
    assert summary.delivery_errors == 0
    expected_file = tmp_path / "expected.jsonl"
    run(_config(settings, f"file:{expected_file}", compression, seed=3))
    expected_events = expected_file.read_bytes().splitlines()
    expected_transactions = transactions_path(expected_file).read_bytes().splitlines()

    events = _consume(settings, events_topic, len(expected_events))
    transactions = _consume(settings, transactions_topic, len(expected_transactions))
    assert sorted(v for _, _, v in events) == sorted(expected_events)
    assert sorted(v for _, _, v in transactions) == sorted(expected_transactions)

    partitions: dict[bytes, set[int]] = defaultdict(set)
    for partition, key, value in events + transactions:
        assert value.find(b'"user_id":"' + key + b'"') >= 0
        partitions[key].add(partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1
