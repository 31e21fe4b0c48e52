"""What the lake holds, read through pyiceberg: tables, snapshots, files, rows, bytes, and the
archived offsets against Kafka's end offsets (how far behind the lake is)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lambdapipe.errors import Problem
from lambdapipe.lake.tables import RawTable, raw_tables
from lambdapipe.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from lambdapipe.lake.offsets import KafkaOffsets


@dataclass(frozen=True)
class PartitionLag:
    """One Kafka partition: records archived, Kafka's range, records not archived yet."""

    partition: int
    archived: int
    next_offset: int  # the next offset the lake would take (max archived + 1)
    kafka_low: int
    kafka_high: int

    @property
    def behind(self) -> int:
        return max(self.kafka_high - max(self.next_offset, self.kafka_low), 0)


@dataclass(frozen=True)
class TableStatus:
    """One raw table as the catalog and Kafka see it."""

    name: str
    topic: str
    exists: bool
    snapshots: int = 0
    current_snapshot: int | None = None
    committed_at: datetime | None = None
    files: int = 0
    rows: int = 0
    bytes: int = 0
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def behind(self) -> int:
        return sum(p.behind for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "topic": self.topic,
            "exists": self.exists,
            "snapshots": self.snapshots,
            "current_snapshot": self.current_snapshot,
            "committed_at": self.committed_at.isoformat() if self.committed_at else None,
            "files": self.files,
            "rows": self.rows,
            "bytes": self.bytes,
            "behind": self.behind,
            "partitions": [
                {
                    "partition": p.partition,
                    "archived": p.archived,
                    "next_offset": p.next_offset,
                    "kafka_low": p.kafka_low,
                    "kafka_high": p.kafka_high,
                    "behind": p.behind,
                }
                for p in self.partitions
            ],
        }


def load_raw_table(catalog: Catalog, settings: Settings, name: str) -> Table:
    """A raw table through pyiceberg; a Problem (not a traceback) when it does not exist."""
    from pyiceberg.exceptions import NoSuchTableError

    identifier = f"{settings.lake.namespace}.{name}"
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        known = ", ".join(t.name for t in raw_tables(settings))
        raise Problem(
            f"the lake has no table {identifier}",
            hint=f"raw tables: {known}; `lambdapipe lake archive` creates them",
        ) from None


def archived_offsets(table: Table, snapshot_id: int | None = None) -> dict[int, tuple[int, int]]:
    """{Kafka partition: (records, max offset)} of a table (at a snapshot)."""
    data = table.scan(selected_fields=("partition", "offset"), snapshot_id=snapshot_id).to_arrow()
    if data.num_rows == 0:
        return {}
    grouped = data.group_by("partition").aggregate([("offset", "count"), ("offset", "max")])
    return {
        int(r["partition"]): (int(r["offset_count"]), int(r["offset_max"]))
        for r in grouped.to_pylist()
    }


def table_status(
    catalog: Catalog, settings: Settings, raw: RawTable, offsets: KafkaOffsets | None
) -> TableStatus:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(f"{settings.lake.namespace}.{raw.name}")
    except NoSuchTableError:
        return TableStatus(raw.name, raw.topic, exists=False)
    snapshot = table.current_snapshot()
    # the snapshot's own totals: no manifest read, and right for a commit that added no file
    totals = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    rows = int(totals.get("total-records", 0))
    archived = archived_offsets(table) if rows else {}
    watermarks = offsets.watermarks(raw.topic) if offsets is not None else {}
    partitions = [
        PartitionLag(
            p,
            archived.get(p, (0, -1))[0],
            archived.get(p, (0, -1))[1] + 1,
            *watermarks.get(p, (0, 0)),
        )
        for p in sorted(set(archived) | set(watermarks))
    ]
    return TableStatus(
        raw.name,
        raw.topic,
        exists=True,
        snapshots=len(table.snapshots()),
        current_snapshot=snapshot.snapshot_id if snapshot else None,
        committed_at=(
            datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC) if snapshot else None
        ),
        files=int(totals.get("total-data-files", 0)),
        rows=rows,
        bytes=int(totals.get("total-files-size", 0)),
        partitions=partitions,
    )


def lake_status(settings: Settings, with_kafka: bool = True) -> list[TableStatus]:
    """Every raw table's status (Kafka's offsets too, unless `with_kafka` is off)."""
    from lambdapipe.lake.offsets import KafkaOffsets
    from lambdapipe.resources import Resources

    offsets = KafkaOffsets(settings) if with_kafka else None
    try:
        with Resources(settings).lake_catalog() as catalog:
            return [table_status(catalog, settings, raw, offsets) for raw in raw_tables(settings)]
    finally:
        if offsets is not None:
            offsets.close()


def commit_freshness(table: Table, since_ms: int = 0) -> list[float]:
    """Seconds from each record's Kafka timestamp to the commit of the snapshot that added it,
    for the records that reached Kafka after `since_ms` (the lake's freshness, record by
    record; a `since_ms` after the archiver's first commit leaves its start-up out)."""
    import pyarrow.parquet as pq

    ages: list[float] = []
    for snapshot in table.snapshots():
        summary = snapshot.summary
        if (
            snapshot.timestamp_ms < since_ms
            or summary is None
            or summary.operation.value != "append"
        ):
            continue
        for manifest in snapshot.manifests(table.io):
            if manifest.added_snapshot_id != snapshot.snapshot_id:
                continue
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                if entry.snapshot_id != snapshot.snapshot_id:
                    continue
                with table.io.new_input(entry.data_file.file_path).open() as handle:
                    column = pq.read_table(handle, columns=["kafka_timestamp"])["kafka_timestamp"]
                millis = pc.cast(pc.cast(column, pa.timestamp("ms", tz="UTC")), pa.int64())
                ages.extend(
                    (snapshot.timestamp_ms - m) / 1000
                    for m in millis.to_pylist()
                    if m is not None and m >= since_ms
                )
    return ages
