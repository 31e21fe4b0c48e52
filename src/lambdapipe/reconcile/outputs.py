"""Where a reconciliation goes: a results table in the warehouse and in the serving store, the
Prometheus gauges the serve process exports from the store's table, JSON and the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import pyarrow as pa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rich.console import Console
from rich.table import Table

from lambdapipe.reconcile.compare import CAUSES, Reconciliation
from lambdapipe.serving.store import ServingStore, StoreError
from lambdapipe.warehouse.base import Warehouse

TABLE: Final = "reconciliation"  # the store's table; the warehouse's is reconcile.reconciliation
WAREHOUSE_SCHEMA: Final = "reconcile"
# (name, Arrow type, ClickHouse type, DuckDB type, Snowflake type)
_TEXT = (pa.string(), "LowCardinality(String)", "VARCHAR", "VARCHAR")
_NUMBER = (pa.decimal128(38, 2), "Decimal(38, 2)", "DECIMAL(38, 2)", "NUMBER(38, 2)")
_MAYBE_NUMBER = (
    pa.decimal128(38, 2),
    "Nullable(Decimal(38, 2))",
    "DECIMAL(38, 2)",
    "NUMBER(38, 2)",
)
COLUMNS: Final = (
    ("day", pa.date32(), "Date", "DATE", "DATE"),
    ("reconciled_at", pa.timestamp("ms"), "DateTime64(3, 'UTC')", "TIMESTAMP", "TIMESTAMP_NTZ"),
    ("status", *_TEXT),
    ("metric", *_TEXT),
    ("key", pa.string(), "String", "VARCHAR", "VARCHAR"),
    ("speed", *_NUMBER),
    ("batch", *_NUMBER),
    ("truth", *_MAYBE_NUMBER),
    ("diff", *_NUMBER),
    *((cause, *_NUMBER) for cause in CAUSES),
    ("unexplained", *_NUMBER),
    ("batch_vs_truth", *_MAYBE_NUMBER),
)
# How many recent days the serve process exports as gauges.
EXPORTED_DAYS: Final = 7


def results_table(result: Reconciliation, reconciled_at: datetime) -> pa.Table:
    """The reconciliation as rows of the results table (one per metric and key)."""
    at = reconciled_at.astimezone(UTC).replace(tzinfo=None)
    fixed = {"day": result.day, "reconciled_at": at, "status": result.status}
    return pa.table(
        {
            name: pa.array(
                [fixed[name] if name in fixed else row[name] for row in result.rows], arrow
            )
            for name, arrow, *_ in COLUMNS
        }
    )


def write_to_warehouse(warehouse: Warehouse, rows: pa.Table, day: date) -> None:
    """Replace `day`'s rows of `reconcile.reconciliation` (created where missing)."""
    column = 3 if warehouse.dialect == "duckdb" else 4
    columns = ", ".join(f"{c[0]} {c[column]}" for c in COLUMNS)
    warehouse.execute(f"CREATE SCHEMA IF NOT EXISTS {WAREHOUSE_SCHEMA}")
    warehouse.execute(f"CREATE TABLE IF NOT EXISTS {WAREHOUSE_SCHEMA}.{TABLE} ({columns})")
    warehouse.replace_day(f"{WAREHOUSE_SCHEMA}.{TABLE}", "day", day, rows)


def store_ddl() -> str:
    """The serving store's results table: every run kept, readers take each day's latest."""
    columns = ",\n    ".join(f"`{c[0]}` {c[2]}" for c in COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (\n    {columns}\n)\n"
        "ENGINE = MergeTree\nORDER BY (day, reconciled_at, metric, key)\n"
        "SETTINGS non_replicated_deduplication_window = 1000"
    )


def write_to_store(store: ServingStore, rows: pa.Table, day: date, reconciled_at: datetime) -> None:
    """Add this run's rows to the store's results table (as the writer; once per run)."""
    store.execute(store_ddl())
    token = f"reconcile:{day.isoformat()}:{int(reconciled_at.timestamp() * 1000)}"
    store.insert_arrow(TABLE, rows, token)


# Each day's latest run, summed per metric (and cause): what the gauges show.
_LATEST = f"""
SELECT day, metric, any(status) AS status, max(reconciled_at) AS at,
       sum(abs(diff)) AS diff, sum(abs(unexplained)) AS unexplained,
       sum(abs(ifNull(batch_vs_truth, 0))) AS batch_vs_truth,
       {", ".join(f"sum(abs({c})) AS {c}" for c in CAUSES)}
FROM {TABLE}
WHERE (day, reconciled_at) IN (
    SELECT day, max(reconciled_at) FROM {TABLE}
    WHERE day >= {{since:Date}} GROUP BY day
)
GROUP BY day, metric
ORDER BY day, metric
"""  # noqa: S608


class ReconciliationCollector(Collector):
    """Prometheus gauges from the store's results table, read at every scrape."""

    def __init__(self, store: ServingStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        since = datetime.now(UTC).date() - timedelta(days=EXPORTED_DAYS)
        try:
            rows = self.store.query_rows(_LATEST, {"since": since})
        except StoreError:  # no reconciliation yet (the table is created by the first run)
            return
        prefix = "lambdapipe_reconcile"
        failed = GaugeMetricFamily(
            f"{prefix}_failed",
            "1 when the day's last reconciliation failed (alert)",
            labels=["day"],
        )
        at = GaugeMetricFamily(
            f"{prefix}_timestamp_seconds", "when the day was last reconciled", labels=["day"]
        )
        per_metric = {
            name: GaugeMetricFamily(f"{prefix}_{name}", text, labels=["day", "metric"])
            for name, text in (
                ("difference", "sum of |speed - batch| over the metric's keys"),
                ("unexplained", "sum of |unexplained remainder| over the metric's keys"),
                ("batch_vs_truth", "sum of |batch - truth| over the metric's keys"),
            )
        }
        attributed = GaugeMetricFamily(
            f"{prefix}_attributed",
            "sum of |difference attributed to the cause| over the metric's keys",
            labels=["day", "metric", "cause"],
        )
        days: dict[str, tuple[str, datetime]] = {}
        for row in rows:
            day = row["day"].isoformat()
            days[day] = (row["status"], row["at"])
            per_metric["difference"].add_metric([day, row["metric"]], float(row["diff"]))
            for name in ("unexplained", "batch_vs_truth"):
                per_metric[name].add_metric([day, row["metric"]], float(row[name]))
            for cause in CAUSES:
                attributed.add_metric([day, row["metric"], cause], float(row[cause]))
        for day, (status, moment) in days.items():
            failed.add_metric([day], 1.0 if status == "failed" else 0.0)
            at.add_metric([day], moment.timestamp())
        yield failed
        yield at
        yield from per_metric.values()
        yield attributed


def exposition(store: ServingStore) -> bytes:
    """The gauges in Prometheus's text format (what the serve process's
    `/metrics/reconcile` returns; Prometheus scrapes it as job `lambdapipe-reconcile`)."""
    registry = CollectorRegistry()
    registry.register(ReconciliationCollector(store))
    return bytes(generate_latest(registry))


def as_json(result: Reconciliation) -> dict[str, Any]:
    """The reconciliation as a JSON document (numbers: integers, or money as strings)."""
    return {
        "day": result.day.isoformat(),
        "status": result.status,
        "speed_complete": result.speed_complete,
        "batch_loaded": result.batch_loaded,
        "findings": result.findings,
        "attributed": {c: _number(v) for c, v in result.attributed().items()},
        "unexplained_units": result.unexplained_units,
        "rows": [{k: _number(v) for k, v in row.items()} for row in result.rows],
    }


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    return value


def print_report(result: Reconciliation, console: Console) -> None:
    """The rich report: one table of every metric and key, then the verdict."""
    table = Table(title=f"reconciliation of {result.day}: speed vs batch vs truth")
    for name, justify in (
        ("metric", "left"),
        ("key", "left"),
        ("speed", "right"),
        ("batch", "right"),
        ("truth", "right"),
        ("diff", "right"),
        ("attributed by cause", "left"),
        ("unexplained", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in result.rows:
        causes = ", ".join(f"{c} {_signed(row[c])}" for c in CAUSES if row[c])
        unexplained = _signed(row["unexplained"]) if row["unexplained"] else "0"
        truth = "-" if row["truth"] is None else str(_number(row["truth"]))
        if row["batch_vs_truth"]:
            truth = f"[red]{truth}[/]"
        table.add_row(
            row["metric"],
            row["key"],
            str(_number(row["speed"])),
            str(_number(row["batch"])),
            truth,
            _signed(row["diff"]) if row["diff"] else "0",
            causes,
            f"[red]{unexplained}[/]" if row["unexplained"] else unexplained,
        )
    console.print(table)
    totals = ", ".join(f"{c} {_number(v)}" for c, v in result.attributed().items() if v)
    console.print(f"attributed: {totals or 'nothing to attribute'}")
    if not result.speed_complete:
        console.print("[yellow]the speed layer has not passed the end of the day yet[/]")
    if not result.batch_loaded:
        console.print("[yellow]the batch layer has not loaded the day (run `batch run`)[/]")
    colour = {"ok": "green", "incomplete": "yellow", "failed": "red"}[result.status]
    console.print(f"[bold {colour}]{result.status}[/]")
    for finding in result.findings:
        console.print(f"[red]- {finding}[/]")


def _signed(value: Decimal) -> str:
    number = _number(value)
    return f"+{number}" if value > 0 else str(number)
