"""Lake maintenance: what every-micro-batch-is-a-commit leaves behind, cleaned up.

Per raw table, with Iceberg's Spark procedures: compaction of small files
(`rewrite_data_files`), snapshot expiry past the retention (`expire_snapshots`, keeping the
newest `retain_last`), manifest rewrite (`rewrite_manifests`), then removal of files no
snapshot references (`remove_orphan_files`, only older than `orphan_age_s`, so a commit in
flight is never touched). Safe while the archiver appends: compaction replaces files and
conflicts only with deletes, and the archiver only appends; every step is an Iceberg commit
retried on conflict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from lambdapipe.lake.tables import raw_tables
from lambdapipe.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class TableMaintenance:
    """What maintenance did to one table: each procedure's result row."""

    table: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def procedures(settings: Settings, table: str, now: datetime) -> dict[str, str]:
    """The maintenance calls of one table, in order (`<namespace>.<table>` in the catalog)."""
    lake = settings.lake
    system = f"{lake.catalog}.system"
    name = f"'{lake.namespace}.{table}'"
    expire_before = now - timedelta(seconds=lake.snapshot_retention_s)
    orphans_before = now - timedelta(seconds=lake.orphan_age_s)
    return {
        "rewrite_data_files": (
            f"CALL {system}.rewrite_data_files(table => {name}, "
            "options => map('min-input-files', '2', 'partial-progress.enabled', 'true'))"
        ),
        "expire_snapshots": (
            f"CALL {system}.expire_snapshots(table => {name}, "
            f"older_than => {_timestamp(expire_before)}, retain_last => {lake.retain_last})"
        ),
        "rewrite_manifests": f"CALL {system}.rewrite_manifests(table => {name})",
        # listed through the table's FileIO (S3), not a Hadoop file system
        "remove_orphan_files": (
            f"CALL {system}.remove_orphan_files(table => {name}, "
            f"older_than => {_timestamp(orphans_before)}, prefix_listing => true)"
        ),
    }


def maintain(
    settings: Settings, spark: SparkSession, now: datetime | None = None
) -> list[TableMaintenance]:
    """Run every maintenance procedure on every raw table that exists."""
    lake = settings.lake
    moment = now or datetime.now(UTC)
    existing = {
        row["tableName"]
        for row in spark.sql(f"SHOW TABLES IN {lake.catalog}.{lake.namespace}").collect()
    }
    results = []
    for raw in raw_tables(settings):
        if raw.name not in existing:
            continue
        done = TableMaintenance(raw.name)
        for step, sql in procedures(settings, raw.name, moment).items():
            rows = spark.sql(sql).collect()
            if step == "remove_orphan_files":  # one row per file removed
                done.steps[step] = {"removed_files": len(rows)}
            else:
                done.steps[step] = rows[0].asDict() if rows else {}
            log.info("%s %s: %s", raw.name, step, done.steps[step])
        results.append(done)
    return results


def main(settings: Settings) -> list[TableMaintenance]:
    from lambdapipe.spark import build_spark

    spark = build_spark(
        settings, "lambdapipe-lake-maintain", lake=True, driver_memory=settings.lake.driver_memory
    )
    try:
        return maintain(settings, spark)
    finally:
        spark.stop()
