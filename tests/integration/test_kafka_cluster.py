"""A 3-node KRaft cluster (RF=3, min.insync.replicas=2) survives kill -9 of a broker."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import ConfigResource

from lambdapipe.runtime.stack import Stack
from lambdapipe.topics import admin_client, quiet
from tests.stacks import PORT_OFFSET, STACK_NAME, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Stack]:
    settings = stack_settings(
        f"{STACK_NAME}-cluster3", port_offset=PORT_OFFSET + 1000, kafka_nodes=3
    )
    shutil.rmtree(settings.home / "data", ignore_errors=True)
    stack = Stack(settings)
    stack.up(["kafka"], progress=lambda line: None)
    yield stack
    stack.down(purge=True, progress=lambda line: None)
    shutil.rmtree(settings.home, ignore_errors=True)


class SteadyProducer(threading.Thread):
    """Produces numbered messages with acks=all until stopped; records what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.acked: set[int] = set()
        self.errors = 0
        self.stopping = threading.Event()
        self.producer = Producer(
            quiet(
                {
                    "bootstrap.servers": bootstrap,
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 5,
                    "message.timeout.ms": 60000,
                }
            )
        )

    def _delivered(self, err: object, msg: object) -> None:
        if err is None:
            self.acked.add(int(msg.value()))  # type: ignore[attr-defined]
        else:
            self.errors += 1

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            self.producer.produce(
                self.topic, str(n).encode(), key=str(n % 11).encode(), on_delivery=self._delivered
            )
            self.producer.poll(0)
            n += 1
            time.sleep(0.0005)
        self.producer.flush(60)

    def acked_after(self, seconds: float) -> int:
        before = len(self.acked)
        time.sleep(seconds)
        return len(self.acked) - before


def in_sync_replicas(stack: Stack, topic: str) -> list[int]:
    metadata = admin_client(stack.settings).list_topics(topic, timeout=10)
    return [len(p.isrs) for p in metadata.topics[topic].partitions.values()]


def test_cluster_has_three_brokers_and_replicated_topics(cluster: Stack) -> None:
    admin = admin_client(cluster.settings)
    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.brokers) == [0, 1, 2]
    events = metadata.topics[cluster.settings.kafka.events_topic]
    assert all(len(p.replicas) == 3 for p in events.partitions.values())
    (future,) = admin.describe_configs(
        [ConfigResource("topic", cluster.settings.kafka.events_topic)]
    ).values()
    assert future.result(10)["min.insync.replicas"].value == "2"


def test_killed_broker_loses_no_acknowledged_message(cluster: Stack) -> None:
    topic = cluster.settings.kafka.events_topic
    producer = SteadyProducer(cluster.settings.kafka.bootstrap, topic)
    producer.start()
    assert producer.acked_after(3) > 0

    victim = next(s for s in cluster.services if s.name == "kafka-1")
    victim.process.kill()  # kill -9: no controlled shutdown
    killed_at = time.monotonic()
    # With 2 of 3 replicas left, min.insync=2 still holds: once the controller has fenced the
    # dead broker (broker.session.timeout.ms) and the leaders have shrunk their ISRs
    # (replica.lag.time.max.ms), writes are acknowledged again.
    acked_at_kill = len(producer.acked)
    time.sleep(1)
    while time.monotonic() - killed_at < 45 and producer.acked_after(1) == 0:
        pass
    assert producer.acked_after(3) > 0, "writes were not accepted with one broker down"
    assert len(producer.acked) > acked_at_kill
    print(f"acknowledgements resumed {time.monotonic() - killed_at - 3:.1f}s after kill -9")

    cluster.up(["kafka-1"], progress=lambda line: None)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and min(in_sync_replicas(cluster, topic)) < 3:
        time.sleep(1)
    assert min(in_sync_replicas(cluster, topic)) == 3, "kafka-1 did not rejoin the ISR"
    producer.stopping.set()
    producer.join(90)
    assert producer.errors == 0

    consumer = Consumer(
        quiet(
            {
                "bootstrap.servers": cluster.settings.kafka.bootstrap,
                "group.id": f"verify-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
            }
        )
    )
    consumer.subscribe([topic])
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(set(seen)) < len(producer.acked) and time.monotonic() < deadline:
        seen.extend(int(m.value()) for m in consumer.consume(5000, timeout=1) if m.error() is None)
    consumer.close()
    assert producer.acked <= set(seen), f"lost {len(producer.acked - set(seen))} acknowledged"
    assert len(seen) == len(set(seen)), "idempotent producer wrote duplicates"


def test_down_purge_removes_the_data(cluster: Stack) -> None:
    data = cluster.settings.data_dir
    assert (data / "kafka").exists()
    cluster.down(purge=True, progress=lambda line: None)
    assert not data.exists()
    assert not cluster.settings.log_dir.exists()
    # a fresh start has an empty cluster: only the topics lambdapipe declares
    cluster.up(["kafka"], progress=lambda line: None)
    admin = admin_client(cluster.settings)
    deadline = time.monotonic() + 15  # a just-started broker may serve metadata a moment late
    topics = set(admin.list_topics(timeout=10).topics)
    declared = {"events", "transactions", "events.dlq", "events.accepted"}
    while time.monotonic() < deadline and len(topics) < len(declared):
        time.sleep(0.5)
        topics = set(admin.list_topics(timeout=10).topics)
    assert topics == declared
