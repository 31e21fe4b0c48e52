"""`lambdapipe batch publish`: curated days from the lake into the serving store's batch twins.

Each day's curated events, transactions and sessions are read with pyiceberg (the columns the
realtime tables have, data file by data file) and handed to `serving.publish.publish_day`
through the store's writer. The run id of a day is a digest of the data files that hold it in
the three tables: the same batch run gives the same id (publishing it again is a no-op), a
re-run of the day writes new files and so a new id (it replaces the day); runs of other days
and the dead letters leave it unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from datetime import date
from typing import Final

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.io.pyarrow import ArrowScan

from lambdapipe.batch import tables
from lambdapipe.batch.load import day_filter
from lambdapipe.errors import Problem
from lambdapipe.serving.ddl import TABLES
from lambdapipe.serving.publish import CuratedDay, Publication, publication_order, publish_day
from lambdapipe.serving.publish import published as published_days
from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings

# realtime table -> the curated table whose rows mean the same (same columns, same sessionizer:
# a session's `revenue` is the sum of its purchase events' amounts, gross bookings, in both)
SOURCES: Final = {
    "user_events_realtime": tables.EVENTS,
    "transactions_realtime": tables.TRANSACTIONS,
    "user_sessions_realtime": tables.SESSIONS,
}
_COLUMNS: Final = {t.name: [name for name, _ in t.columns] for t in TABLES}


def curated_day(catalog: Catalog, settings: Settings, day: date) -> CuratedDay:
    """`day`'s curated rows with the realtime tables' columns, and the run id of the day."""
    files: list[str] = []
    rows: dict[str, pa.RecordBatchReader] = {}
    for realtime, table in SOURCES.items():
        name = f"{settings.lake.curated_namespace}.{table.name}"
        if not catalog.table_exists(name):
            raise Problem(
                f"the lake has no curated table {name}",
                hint=f"run the batch first: lambdapipe batch run --date {day}",
            )
        iceberg = catalog.load_table(name)
        present = {f.name for f in iceberg.schema().fields}
        columns = tuple(n for n in _COLUMNS[realtime] if n in present)
        scan = iceberg.scan(row_filter=day_filter(table, day), selected_fields=columns)
        tasks = list(scan.plan_files())
        files += sorted(f"{table.name}:{task.file.file_path}" for task in tasks)
        reader = ArrowScan(iceberg.metadata, iceberg.io, scan.projection(), scan.row_filter)
        batches = iter(reader.to_record_batches(tasks))
        first = next(batches, None)
        if first is None:
            rows[realtime] = pa.RecordBatchReader.from_batches(scan.projection().as_arrow(), [])
        else:
            rows[realtime] = pa.RecordBatchReader.from_batches(
                first.schema, itertools.chain([first], batches)
            )
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:20]
    return CuratedDay(day, f"curated-{digest}", rows)


def publish(
    settings: Settings,
    store: ServingStore,
    days: list[date],
    *,
    force: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Publication]:
    """Publish each of `days` (in an order that keeps the published days unbroken)."""
    from lambdapipe.resources import Resources

    done = []
    with Resources(settings).lake_catalog() as catalog:
        for day in publication_order(days, published_days(store)):
            progress(f"{day}: publishing into the serving store")
            done.append(publish_day(store, curated_day(catalog, settings, day), force=force))
    return done
