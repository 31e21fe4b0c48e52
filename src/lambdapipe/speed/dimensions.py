"""Dimension state fed by the Debezium CDC topic of `users`: user_id -> tier.

The state lives in the driver. Before each micro-batch `refresh()` reads the CDC records that
arrived since the last call (up to the partitions' end offsets seen at the start of the call),
and `table()` hands the state to the micro-batch's enrichment as an Arrow table, rebuilt only
when the state changed. PostgreSQL is never queried per event.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from lambdapipe.ingest import cdc
from lambdapipe.settings import Settings

log = logging.getLogger(__name__)


def apply_change(tiers: dict[str, str], value: dict[str, Any] | None) -> bool:
    """Apply one Debezium change (None for a tombstone) to `tiers`; True if it changed them."""
    if value is None:
        return False
    after = value.get("after")
    if value.get("op") == "d" or after is None:
        before = value.get("before") or {}
        return tiers.pop(str(before.get("user_id")), None) is not None
    user_id, tier = str(after["user_id"]), str(after["tier"])
    if tiers.get(user_id) == tier:
        return False
    tiers[user_id] = tier
    return True


class TierState:
    """The users' tiers as of the CDC records read so far."""

    def __init__(self, settings: Settings, read_timeout_s: float = 10.0) -> None:
        self.topic = cdc.topic(settings, "users")
        self.tiers: dict[str, str] = {}
        self.version = 0
        self.records = 0
        self._read_timeout_s = read_timeout_s
        self._lock = threading.Lock()
        self._table: tuple[int, pa.Table] | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": "lambdapipe-speed-dimensions",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "log_level": 3,
            }
        )
        # End offsets come from an admin client: one request for every partition, on a
        # connection of its own (the consumer's queries wait behind its long-polling fetches).
        self._admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap, "log_level": 3})
        self._assigned: set[int] = set()

    def _end_offsets(self) -> dict[int, int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        specs = {TopicPartition(self.topic, p): latest for p in self._assigned}
        futures = self._admin.list_offsets(specs, request_timeout=5)
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    def _assign_new_partitions(self) -> None:
        try:
            metadata = self._admin.list_topics(self.topic, timeout=5)
        except KafkaException:
            return
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return
        new = [p for p in topic.partitions if p not in self._assigned]
        if new:
            self._consumer.incremental_assign([TopicPartition(self.topic, p, 0) for p in new])
            self._assigned.update(new)

    def refresh(self) -> int:
        """Read the CDC records up to the current end of the topic; return how many changed."""
        with self._lock:
            self._assign_new_partitions()
            if not self._assigned:
                return 0
            try:
                ends = self._end_offsets()
                positions = {
                    tp.partition: tp.offset
                    for tp in self._consumer.position(
                        [TopicPartition(self.topic, p) for p in self._assigned]
                    )
                }
            except KafkaException as exc:  # a leader moving: the next micro-batch reads on
                log.warning("dimensions not refreshed: %s", exc)
                return 0
            behind = {p for p, end in ends.items() if positions.get(p, -1) < end and end > 0}
            changed = 0
            deadline = time.monotonic() + self._read_timeout_s
            while behind and time.monotonic() < deadline:
                for message in self._consumer.consume(10_000, timeout=0.2):
                    if message.error() is not None:
                        continue
                    raw = message.value()
                    changed += apply_change(self.tiers, orjson.loads(raw) if raw else None)
                    self.records += 1
                    offset, partition = message.offset() or 0, message.partition() or 0
                    if offset + 1 >= ends.get(partition, 0):
                        behind.discard(partition)
            if changed:
                self.version += 1
                log.info(
                    "dimensions: %d users after %d CDC records (%d changed)",
                    len(self.tiers),
                    self.records,
                    changed,
                )
            return changed

    def table(self) -> pa.Table:
        """The state as an Arrow table (user_id, tier), rebuilt only when the state changed."""
        with self._lock:
            if self._table is None or self._table[0] != self.version:
                table = pa.table(
                    {
                        "user_id": pa.array(list(self.tiers), pa.string()),
                        "tier": pa.array(list(self.tiers.values()), pa.string()),
                    }
                )
                self._table = (self.version, table)
            return self._table[1]

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
