"""Dimension state fed by the Debezium CDC topics of `users` and `products`.

The state lives in the driver. Before each micro-batch `refresh()` reads the CDC records that
arrived since the last call (up to the partitions' end offsets seen at the start of the call).
Each dimension keeps the newest row per key by version (the change's LSN: a replayed or older
change never regresses a row). `tier_table()` hands the users' tiers to the micro-batch's
enrichment as an Arrow table, rebuilt only when they changed; `write_changes()` writes the rows
changed since the last write into the serving store's dimension tables
(`serving/dimensions.py`). PostgreSQL is never queried per event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from lambdapipe.ingest import cdc
from lambdapipe.serving.dimensions import PRODUCTS_DIM, USERS_DIM, DimensionTable
from lambdapipe.settings import Settings

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
_EPOCH: Final = date(1970, 1, 1)


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _day(value: int) -> date:
    """Kafka Connect's Date: days since 1970-01-01."""
    return _EPOCH + timedelta(days=int(value))


# How a Debezium JSON value (decimals as strings, see ingest/cdc.py) becomes each column's value,
# and the Arrow type the store reads it from, by ClickHouse type.
_CONVERT: Final[dict[str, tuple[Callable[[Any], Any], pa.DataType]]] = {
    "UUID": (str, pa.string()),
    "String": (str, pa.string()),
    "LowCardinality(String)": (str, pa.string()),
    "Decimal(10, 2)": (Decimal, pa.decimal128(10, 2)),
    "Bool": (bool, pa.bool_()),
    "DateTime64(3, 'UTC')": (_timestamp, pa.timestamp("ms", tz="UTC")),
    "Date32": (_day, pa.date32()),
    "UInt64": (int, pa.uint64()),
}


def change_row(dimension: DimensionTable, value: dict[str, Any] | None) -> Row | None:
    """The dimension row of one Debezium change, in `dimension.columns` order; None for a
    tombstone. A delete keeps the old row's values (REPLICA IDENTITY FULL) with `deleted`."""
    if value is None:
        return None
    deleted = value.get("op") == "d" or value.get("after") is None
    image = (value.get("before") if deleted else value.get("after")) or {}
    if dimension.key not in image:
        return None
    fields = {**image, "deleted": deleted, "version": value["source"]["lsn"]}
    return tuple(
        None if fields.get(name) is None else _CONVERT[kind][0](fields[name])
        for name, kind in dimension.columns
    )


class DimensionState:
    """The newest row per key of one dimension, and the keys changed since the last write."""

    def __init__(self, dimension: DimensionTable) -> None:
        self.dimension = dimension
        self.rows: dict[str, Row] = {}
        self.pending: set[str] = set()
        self.applied = 0  # changes accepted so far: tells readers of the rows they changed

    def apply(self, value: dict[str, Any] | None) -> bool:
        """Apply one Debezium change; True if it replaced the key's row (a newer version)."""
        row = change_row(self.dimension, value)
        if row is None:
            return False
        key, current = str(row[0]), self.rows.get(str(row[0]))
        if current is not None and row[-1] <= current[-1]:  # a replay, or older than we hold
            return False
        self.rows[key] = row
        self.pending.add(key)
        self.applied += 1
        return True

    def changed(self) -> tuple[pa.Table, dict[str, int]]:
        """The changed rows as Arrow (the store's columns) and the version of each key in it."""
        rows = [self.rows[key] for key in sorted(self.pending)]
        columns = self.dimension.columns
        table = pa.table(
            {
                name: pa.array([row[i] for row in rows], _CONVERT[kind][1])
                for i, (name, kind) in enumerate(columns)
            }
        )
        return table, {str(row[0]): int(row[-1]) for row in rows}

    def written(self, versions: dict[str, int]) -> None:
        """These versions are in the store: their keys are no longer pending (unless newer)."""
        for key, version in versions.items():
            if int(self.rows[key][-1]) == version:
                self.pending.discard(key)


class Dimensions:
    """The users' and products' dimensions as of the CDC records read so far."""

    def __init__(self, settings: Settings, read_timeout_s: float = 10.0) -> None:
        self.users = DimensionState(USERS_DIM)
        self.products = DimensionState(PRODUCTS_DIM)
        self._states = {
            cdc.topic(settings, state.dimension.source): state
            for state in (self.users, self.products)
        }
        self.records = 0
        self._tier_column = [name for name, _ in USERS_DIM.columns].index("tier")
        self._read_timeout_s = read_timeout_s
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._tiers: tuple[int, pa.Table] | None = None
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
        self._assigned: set[tuple[str, int]] = set()

    def _end_offsets(self) -> dict[tuple[str, int], int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        specs = {TopicPartition(t, p): latest for t, p in self._assigned}
        futures = self._admin.list_offsets(specs, request_timeout=5)
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    def _assign_new_partitions(self) -> None:
        for name in self._states:
            try:
                metadata = self._admin.list_topics(name, timeout=5)
            except KafkaException:
                continue
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                continue
            new = [p for p in topic.partitions if (name, p) not in self._assigned]
            if new:
                self._consumer.incremental_assign([TopicPartition(name, p, 0) for p in new])
                self._assigned.update((name, p) for p in new)

    def refresh(self) -> int:
        """Read the CDC records up to the current end of the topics; return how many changed."""
        with self._lock:
            self._assign_new_partitions()
            if not self._assigned:
                return 0
            try:
                ends = self._end_offsets()
                positions = {
                    (tp.topic, tp.partition): tp.offset
                    for tp in self._consumer.position(
                        [TopicPartition(t, p) for t, p in self._assigned]
                    )
                }
            except KafkaException as exc:  # a leader moving: the next micro-batch reads on
                log.warning("dimensions not refreshed: %s", exc)
                return 0
            behind = {tp for tp, end in ends.items() if positions.get(tp, -1) < end and end > 0}
            changed = 0
            deadline = time.monotonic() + self._read_timeout_s
            while behind and time.monotonic() < deadline:
                for message in self._consumer.consume(10_000, timeout=0.2):
                    if message.error() is not None:
                        continue
                    topic, partition = message.topic() or "", message.partition() or 0
                    state = self._states[topic]
                    raw = message.value()
                    changed += state.apply(orjson.loads(raw) if raw else None)
                    self.records += 1
                    if (message.offset() or 0) + 1 >= ends.get((topic, partition), 0):
                        behind.discard((topic, partition))
            if changed:
                log.info(
                    "dimensions: %d users, %d products after %d CDC records (%d changed)",
                    len(self.users.rows),
                    len(self.products.rows),
                    self.records,
                    changed,
                )
            return changed

    @property
    def tier_version(self) -> int:
        """Bumps whenever a user's row changes."""
        return self.users.applied

    def tier_table(self) -> pa.Table:
        """The users' tiers as an Arrow table (user_id, tier), deleted users left out; rebuilt
        only when a user's row changed."""
        with self._lock:
            if self._tiers is None or self._tiers[0] != self.tier_version:
                live = [row for row in self.users.rows.values() if not row[-2]]
                table = pa.table(
                    {
                        "user_id": pa.array([row[0] for row in live], pa.string()),
                        "tier": pa.array([row[self._tier_column] for row in live], pa.string()),
                    }
                )
                self._tiers = (self.tier_version, table)
            return self._tiers[1]

    def write_changes(self, write: Callable[[str, pa.Table], int]) -> dict[str, int]:
        """Write each dimension's changed rows with `write(table, rows)`; rows per table.

        A failed write raises and leaves its rows pending for the next call. Replays are
        harmless: the tables keep the newest version of each key."""
        written = {}
        with self._write_lock:
            for state in (self.users, self.products):
                with self._lock:
                    if not state.pending:
                        continue
                    rows, versions = state.changed()
                written[state.dimension.name] = write(state.dimension.name, rows)
                with self._lock:
                    state.written(versions)
        return written

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
