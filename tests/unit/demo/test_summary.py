"""The demo's summary of the batch half: per metric totals of reconcile's rows, side by side."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from rich.console import Console

from lambdapipe.demo.batch import BatchHalf, totals, traffic_days
from lambdapipe.demo.cli import summary
from lambdapipe.demo.run import DemoResult
from lambdapipe.generator.run import Summary
from lambdapipe.generator.truth import Truth
from lambdapipe.reconcile.compare import CAUSES, Reconciliation

DAY = date(2026, 12, 2)


def row(metric: str, key: str, speed: int, batch: int, **causes: int) -> dict[str, Any]:
    values = {c: Decimal(causes.get(c, 0)) for c in CAUSES}
    diff = Decimal(speed - batch)
    return {
        "metric": metric,
        "key": key,
        "speed": Decimal(speed),
        "batch": Decimal(batch),
        "truth": Decimal(batch),
        "diff": diff,
        **values,
        "unexplained": diff - sum(values.values(), Decimal(0)),
        "batch_vs_truth": Decimal(0),
    }


def reconciliation() -> Reconciliation:
    rows = [
        row("events", "page_view/gold", 95, 100, late=-5),
        row("events", "page_view/silver", 11, 10, tier=1),
        row("events", "search/silver", 9, 10, tier=-1),
        row("dead_letters", "late", 7, 0, late=7),
        row("funnel", "page_view", 40, 41, speed_incomplete=-1),
    ]
    return Reconciliation(DAY, rows, speed_complete=False, batch_loaded=True)


def test_totals_sum_each_metric_and_count_a_tier_move_once() -> None:
    sums = totals(reconciliation())
    assert sums["events"]["speed"] == 115 and sums["events"]["batch"] == 120
    assert sums["events"]["late"] == -5 and sums["events"]["tier"] == 1
    assert sums["events"]["unexplained"] == 0
    assert sums["funnel/page_view"]["speed_incomplete"] == -1
    assert sums["dead_letters"]["late"] == 7


def test_the_traffic_days_are_the_truths_event_days() -> None:
    truth = {"events_by_day": {"2026-12-02": {}, "2026-12-01": {}}}
    assert traffic_days(truth) == [date(2026, 12, 1), DAY]


def test_the_summary_shows_realtime_batch_truth_the_drift_and_the_merged_answers() -> None:
    half = BatchHalf(
        days=[DAY],
        reconciliations=[reconciliation()],
        truth_totals={DAY: {"events": Decimal(120), "funnel/page_view": Decimal(41)}},
        watermark=DAY,
        not_published="2026-12-02 is not next to the published days",
    )
    result = DemoResult(
        produced=Summary(valid_events=120, truth=Truth(late=5, duplicates=["a", "b"])),
        batch=half,
        merged_funnel={"sessions": 41, "sources": ["batch"], "steps": []},
        merged_revenue=[{"bucket": "2026-12-02T00:00:00", "revenue": 12.5, "source": "batch"}],
    )
    console = Console(width=200, record=True)
    console.print(summary(result, "http://dashboard", running=True))
    text = console.export_text()
    assert "realtime (speed) vs batch vs truth" in text and "incomplete" in text
    assert "late -5, tier 1" in text and "late +7" in text
    assert "watermark 2026-12-02" in text and "Not published: 2026-12-02 is not next" in text
    assert "5 late events and 2 duplicates" in text
