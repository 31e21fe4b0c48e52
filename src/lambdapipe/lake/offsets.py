"""Kafka's end offsets of the archived topics: how far the lake could be."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition

from lambdapipe.lake.tables import RawTable
from lambdapipe.settings import Settings
from lambdapipe.topics import quiet


class KafkaOffsets:
    """Reads low and high watermarks; a topic that does not exist yet has none."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(
            quiet(
                {
                    "bootstrap.servers": settings.kafka.bootstrap,
                    "group.id": f"lambdapipe-lake-offsets-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                }
            )
        )

    def partitions(self, topic: str) -> list[int]:
        metadata = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        return sorted(metadata.partitions)

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """{partition: (low, high)} of `topic`; empty when it does not exist."""
        return {
            p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in self.partitions(topic)
        }

    def end_offsets(self, table: RawTable) -> dict[int, int]:
        """{partition: the next offset Kafka will write} of the table's topic."""
        return {p: high for p, (_, high) in self.watermarks(table.topic).items()}

    def close(self) -> None:
        self.consumer.close()
