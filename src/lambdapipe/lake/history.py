"""Time travel: a table's snapshots, and reads as of a snapshot or a moment (pyiceberg)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from lambdapipe.errors import Problem
from lambdapipe.lake.status import load_raw_table
from lambdapipe.settings import Settings


def snapshot_rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    """Every snapshot of a raw table, oldest first, with what its commit added."""
    from lambdapipe.resources import Resources

    with Resources(settings).lake_catalog() as catalog:
        loaded = load_raw_table(catalog, settings, table)
    rows = []
    for snapshot in loaded.snapshots():
        summary = snapshot.summary
        extra = summary.additional_properties if summary is not None else {}
        rows.append(
            {
                "snapshot_id": snapshot.snapshot_id,
                "parent_id": snapshot.parent_snapshot_id,
                "committed_at": datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC),
                "operation": summary.operation.value if summary is not None else None,
                "added_records": int(extra.get("added-records", 0)),
                "total_records": int(extra.get("total-records", 0)),
                "added_files": int(extra.get("added-data-files", 0)),
                "total_files": int(extra.get("total-data-files", 0)),
                "streaming_batch": extra.get("spark.sql.streaming.epochId"),
            }
        )
    return rows


def _bytes(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def read_as_of(
    settings: Settings,
    table: str,
    snapshot_id: int | None = None,
    timestamp: str | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """The row count and the first `limit` records of a table, now or in the past."""
    from lambdapipe.resources import Resources

    if snapshot_id is not None and timestamp is not None:
        raise Problem("give --as-of-snapshot or --as-of-timestamp, not both")
    with Resources(settings).lake_catalog() as catalog:
        loaded = load_raw_table(catalog, settings, table)
    if timestamp is not None:
        try:
            moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise Problem(
                f"not a time: {timestamp!r}", hint="ISO 8601, e.g. 2026-03-02T10:00:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        found = loaded.snapshot_as_of_timestamp(int(moment.timestamp() * 1000))
        if found is None:
            raise Problem(f"{table} has no snapshot at or before {moment.isoformat()}")
        snapshot_id = found.snapshot_id
    elif snapshot_id is not None and loaded.snapshot_by_id(snapshot_id) is None:
        raise Problem(
            f"{table} has no snapshot {snapshot_id}",
            hint=f"`lambdapipe lake snapshots {table}` lists them (expired ones are gone)",
        )
    scan = loaded.scan(snapshot_id=snapshot_id)
    count = scan.count()
    records = []
    if limit > 0:
        for row in scan.to_arrow_batch_reader().read_next_batch().slice(0, limit).to_pylist():
            row["key"], row["value"] = _bytes(row["key"]), _bytes(row["value"])
            row["headers"] = [
                {"key": h["key"], "value": _bytes(h["value"])} for h in row["headers"] or []
            ]
            records.append(row)
    current = loaded.current_snapshot()
    return {
        "table": table,
        "snapshot_id": snapshot_id or (current.snapshot_id if current else None),
        "rows": count,
        "records": records,
    }
