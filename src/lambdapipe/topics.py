"""lambdapipe's Kafka topics, declared once, and the admin calls that create them.

The same declarations serve the local stack (`lambdapipe up` creates them), the speed layer
(which checks they exist before it reads) and any cluster deployment. Debezium's CDC topics
are not here: Kafka Connect creates them (`topic.creation.*` in the connector config).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from lambdapipe.errors import Problem
from lambdapipe.settings import Settings


@dataclass(frozen=True)
class Topic:
    """One topic: its name, partition count and topic-level configuration."""

    name: str
    partitions: int
    purpose: str
    config: dict[str, str] = field(default_factory=dict)


def declared_topics(settings: Settings) -> list[Topic]:
    """Every topic lambdapipe writes, with the partitions and config it needs."""
    k = settings.kafka
    _, min_isr = k.replication
    common = {"min.insync.replicas": str(min_isr), "compression.type": "producer"}
    return [
        Topic(k.events_topic, k.partitions, "shop events, keyed by user_id", common),
        Topic(k.transactions_topic, k.partitions, "transactions, keyed by user_id", common),
        Topic(k.dlq_topic, k.partitions, "every rejected record, with a reason", common),
        Topic(k.accepted, k.partitions, "speed layer: accepted events for sessions", common),
    ]


def quiet(config: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
    """librdkafka client config that does not print connection errors to stderr."""
    return {"socket.timeout.ms": 3000, "log_level": 0, **config}


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(quiet({"bootstrap.servers": settings.kafka.bootstrap}))


def ensure_topics(settings: Settings, timeout_s: float = 60) -> None:
    """Create the declared topics if missing, and wait until every partition has a leader.

    Retries while a freshly started cluster is still settling (brokers registering). A topic
    that exists with more partitions than `kafka.partitions` is used as it is (every consumer
    follows all partitions); one with fewer is refused at once: raise its partitions.
    """
    topics = declared_topics(settings)
    rf, _ = settings.kafka.replication
    names = [t.name for t in topics]
    client = admin_client(settings)
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        existing = client.list_topics(timeout=10).topics
        missing = [t for t in topics if t.name not in existing]
        _refuse_fewer_partitions(settings, topics, existing)
        if not missing and all(
            len(existing[t.name].partitions) >= t.partitions
            and all(p.leader >= 0 for p in existing[t.name].partitions.values())
            for t in topics
        ):
            return
        new = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=rf, config=t.config)
            for t in missing
        ]
        for name, future in client.create_topics(new, request_timeout=15).items() if new else ():
            try:
                future.result()
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if not (error.retriable() or error.code() < 0):  # negative codes: client-local
                    raise Problem(f"creating topic {name} failed: {error}") from exc
                last_error = str(error)
        time.sleep(0.3)
    raise Problem(
        f"topics {', '.join(names)} not ready within {timeout_s:.0f}s {last_error}",
        hint=f"check that Kafka answers at {settings.kafka.bootstrap} (`lambdapipe status`)",
    )


def _refuse_fewer_partitions(settings: Settings, topics: list[Topic], existing: Any) -> None:
    """A declared topic that exists with fewer partitions than declared: a clear Problem."""
    for t in topics:
        have = len(existing[t.name].partitions) if t.name in existing else 0
        if 0 < have < t.partitions:
            raise Problem(
                f"topic {t.name} has {have} partitions, fewer than the {t.partitions} configured"
                " (kafka.partitions)",
                hint=f"raise them to {t.partitions} with Kafka's admin tools (kafka-topics --alter"
                f" --partitions), or set LAMBDAPIPE_KAFKA__PARTITIONS={have}",
            )
