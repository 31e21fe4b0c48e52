"""Where a reconciliation goes: the warehouse's and the store's tables (a re-run replaces the
day), the gauges the serve process exports from the store, JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from lambdapipe.reconcile.cli import publish, reconcile_day
from lambdapipe.reconcile.outputs import TABLE, ReconciliationCollector, as_json
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.settings import Settings
from lambdapipe.warehouse.duckdb import DuckDBWarehouse
from tests.unit.reconcile.layers import DAY, TwoLayers


def test_results_reach_both_tables_and_a_rerun_replaces_the_warehouse_day(
    store: EmbeddedStore, warehouse: DuckDBWarehouse, tmp_path: object
) -> None:
    layers = TwoLayers()
    layers.event("page_view", "gold", copies=2)
    layers.write(store, warehouse)
    settings = Settings()
    result = reconcile_day(store, warehouse, DAY, None, settings)
    first = datetime.now(UTC)
    publish(result, store, warehouse, first)
    publish(result, store, warehouse, first + timedelta(seconds=1))
    stored = warehouse.query_arrow(
        "SELECT metric, key, diff, duplicate, unexplained, status "
        "FROM reconcile.reconciliation WHERE metric = 'events'"
    ).to_pylist()
    assert stored == [
        {"metric": "events", "key": "page_view/gold", "diff": 1, "duplicate": 1,
         "unexplained": 0, "status": "ok"},
    ]  # fmt: skip
    assert warehouse.query_arrow(
        "SELECT count(DISTINCT reconciled_at) AS runs FROM reconcile.reconciliation"
    ).to_pylist() == [{"runs": 1}]
    runs = store.query_rows(f"SELECT count(DISTINCT reconciled_at) AS runs FROM {TABLE}")
    assert runs == [{"runs": 2}]  # the store keeps every run; readers take the latest


def test_the_gauges_show_each_days_latest_run_and_the_alert(
    store: EmbeddedStore, warehouse: DuckDBWarehouse
) -> None:
    layers = TwoLayers()
    layers.event("page_view", "gold")
    layers.event("search", "silver", batch=False)  # speed only, batch ran: unexplained
    layers.write(store, warehouse)
    result = reconcile_day(store, warehouse, DAY, None, Settings())
    assert result.failed
    publish(result, store, warehouse, datetime.now(UTC))
    registry = CollectorRegistry()
    registry.register(ReconciliationCollector(store))
    text = generate_latest(registry).decode()
    day = DAY.isoformat()
    assert f'lambdapipe_reconcile_failed{{day="{day}"}} 1.0' in text
    assert f'lambdapipe_reconcile_unexplained{{day="{day}",metric="events"}} 1.0' in text
    assert f'lambdapipe_reconcile_difference{{day="{day}",metric="events"}} 1.0' in text
    assert (
        f'lambdapipe_reconcile_attributed{{cause="late",day="{day}",metric="events"}} 0.0' in text
    )


def test_the_gauges_are_empty_before_any_reconciliation(store: EmbeddedStore) -> None:
    registry = CollectorRegistry()
    registry.register(ReconciliationCollector(store))
    assert "lambdapipe_reconcile_failed{" not in generate_latest(registry).decode()


def test_json_numbers_are_integers_or_money_strings(
    store: EmbeddedStore, warehouse: DuckDBWarehouse
) -> None:
    layers = TwoLayers()
    layers.transaction("12.34", tier="gold", speed_tier="silver")
    layers.write(store, warehouse)
    document = orjson.loads(
        orjson.dumps(as_json(reconcile_day(store, warehouse, DAY, None, Settings())))
    )
    revenue = {r["key"]: r for r in document["rows"] if r["metric"] == "revenue"}
    assert revenue["silver"]["tier"] == "12.34" and revenue["gold"]["tier"] == "-12.34"
    assert document["attributed"]["tier"] != 0 and document["status"] == "ok"
    assert Decimal(revenue["gold"]["batch"]) == Decimal("12.34")
