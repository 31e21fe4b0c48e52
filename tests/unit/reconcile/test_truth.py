"""The generator's truth as reconcile's metrics, and batch vs truth failing by its threshold."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from lambdapipe.errors import Problem
from lambdapipe.reconcile.compare import Thresholds, reconcile
from lambdapipe.reconcile.layers import read_day
from lambdapipe.reconcile.truth import read_truth, truth_metrics
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.warehouse.duckdb import DuckDBWarehouse
from tests.unit.reconcile.layers import DAY, NOON, TwoLayers, stamp


def truth_of(layers: TwoLayers, extra_page_views: int = 0) -> dict[str, Any]:
    """The truth document the traffic of `layers` would come with (its batch side)."""
    events: dict[str, dict[str, int]] = {}
    for e in layers.batch_events:
        tiers = events.setdefault(e["event_type"], {})
        tiers[e["user_tier"]] = tiers.get(e["user_tier"], 0) + 1
    events.setdefault("page_view", {}).setdefault("bronze", 0)
    events["page_view"]["bronze"] += extra_page_views
    d = DAY.isoformat()
    return {
        "events_by_day": {d: events},
        "transactions_by_day": {d: {"gold": 1}},
        "gross_bookings_by_day": {d: {"gold": "5.00"}},
        "revenue_by_day": {d: {"gold": "5.00"}},
        "refunds_by_day": {},
        "funnel": {"sessions": 1, "page_view": 1, "product_view": 0, "add_to_cart": 0,
                   "checkout_start": 0, "purchase": 0},
        "sessions": [{"session_id": "s", "tier": "bronze", "start": stamp(NOON)}],
    }  # fmt: skip


def traffic() -> TwoLayers:
    layers = TwoLayers(newest=NOON + timedelta(hours=2))  # of DAY: in both layers
    session = layers.event("page_view", "bronze")["session_id"]
    layers.session(session, "bronze", ("page_view",))
    layers.transaction("5.00", tier="gold")
    return layers


def test_batch_equal_to_the_truth_passes_and_a_gap_fails_naming_it(
    store: EmbeddedStore, warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    layers = traffic()
    layers.write(store, warehouse)
    speed, batch = read_day(store, warehouse, DAY)
    right = truth_metrics(truth_of(layers), DAY)
    result = reconcile(DAY, speed, batch, right, lateness=timedelta(0), thresholds=Thresholds())
    assert not result.failed, result.findings
    assert not [r for r in result.rows if r["batch_vs_truth"] not in (None, 0)]
    # what the truth does not know per day stays unknown, not zero
    assert {r["metric"] for r in result.rows if r["truth"] is None} == {"transactions"}
    refunds = [r for r in result.rows if r["metric"] == "funnel" and r["key"] == "product_view"]
    assert refunds[0]["truth"] == 0
    wrong = truth_metrics(truth_of(layers, extra_page_views=2), DAY)
    failed = reconcile(DAY, speed, batch, wrong, lateness=timedelta(0), thresholds=Thresholds())
    assert failed.failed
    assert "events page_view/bronze: batch 1, truth 3" in " ".join(failed.findings)
    loose = Thresholds(max_batch_vs_truth=Decimal(2))
    assert not reconcile(DAY, speed, batch, wrong, lateness=timedelta(0), thresholds=loose).failed


def test_a_truth_of_other_days_knows_no_funnel_for_this_one() -> None:
    doc = truth_of(TwoLayers())
    doc["sessions"].append({"session_id": "t", "tier": "gold", "start": "1999-01-01T00:00:00.000Z"})
    metrics = truth_metrics(doc, DAY)
    assert "funnel" not in metrics.metrics and "events" in metrics.metrics
    assert "funnel" not in metrics.values.column("metric").to_pylist()


def test_a_file_that_is_not_a_truth_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(Problem, match="no truth file"):
        read_truth(tmp_path / "missing.json")
    (tmp_path / "x.json").write_bytes(orjson.dumps({"totals": {}}))
    with pytest.raises(Problem, match="not a generator truth file"):
        read_truth(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(Problem, match="not JSON"):
        read_truth(tmp_path / "y.json")
