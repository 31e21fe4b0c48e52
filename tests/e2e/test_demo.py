"""The whole Lambda flow, as `lambdapipe demo` runs it: a fresh stack, schemas, dimensions +
Debezium, `lambdapipe serve`, the Spark speed layer and the lake's archiver, two minutes of paced
traffic with faults (late events and long-distance duplicates beyond the speed layer's
lateness among them); then the batch half (lake caught up, `batch run` + publication of the
day, reconciliation with the truth) and the checks: the realtime numbers differ from the truth
by exactly the late events and the late repeats, the merged API answers the truth, reconcile
explains every difference and finds batch = truth; freshness; the dashboard.

Tier churn runs (1 change/s, tier moves among the watched 2% of the users): the truth re-tiered
by the churn log (`reconcile/truth.retiered`) is what the batch and the merged answers equal.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from lambdapipe.demo.cli import summary
from lambdapipe.demo.run import DemoConfig, DemoResult, run_demo
from lambdapipe.reconcile.truth import read_churn_log, retiered
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings
from tests import pipeline_checks as checks
from tests.dashboard import launch, shown_funnel, sign_in
from tests.stacks import PORT_OFFSET, stack_settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    # the batch half runs PySpark in-process: py4j's sockets are closed by the JVM side, and
    # Python reports them as unclosed
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Late events 100 s of event time behind their place against a 5 s lateness: the speed layer
# judges a record against the newest event of the micro-batches before its own, so the margin
# must cover a micro-batch's event-time span (the one after Spark's warm-up spanned 90 s at load
# average 18). Duplicates 150 s behind: beyond the dedup state (kept until its watermark,
# newest - lateness - skew, passes the original + lateness + skew: 20 s, plus two spans), so each
# repeat reaches the lateness check and is a `late` dead letter too. The batch counts each event
# once. The generator draws them only while the traffic has their delay left (the first 80 s
# and 30 s of the 180 s). On-time paced events are never behind the newest by more than the
# shards' windows (~0.1 s): a 5 s lateness and skew hold them.
CONFIG = DemoConfig(
    minutes=3.0,
    rate=500.0,
    # the top products answer (at most 100) then holds every product: its sums are the truth's
    products=100,
    churn_rate=1.0,
    faults="duplicate=0.004:150s,late=0.004:100s,malformed=0.001,schema=0.002,unknown_user=0.002",
    # the generator paces event time by the wall clock: a stalled generator (a busy CI machine)
    # pauses every session, so the gap must be well above such stalls
    session_gap_s=60,
    lateness_s=5,
    max_future_skew_s=5,
    keep_running=True,
)


def screenshot_dashboard(url: str, token: str, expected: dict[str, Any]) -> dict[str, int]:
    """Load the dashboard, sign in, wait until its funnel shows `expected`, save a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url + "/")
        sign_in(page, token)
        shown = shown_funnel(page, expected, timeout_ms=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "e2e-dashboard.png"), full_page=True)
        browser.close()
    return shown


def check_realtime_against_truth(
    settings: Settings, store: ServingStore, truth: dict[str, Any]
) -> None:
    """The speed layer's numbers are the truth's minus exactly the late events; the late events
    and every long-distance repeat are its `late` dead letters."""
    faults, totals = truth["faults"], truth["totals"]
    late, repeats = faults["late_events"], faults["duplicate_event_ids"]
    assert late > 0 and repeats
    events, transactions, dead = checks.store_counts(store)
    assert events == totals["events"] - late
    assert transactions == totals["transactions"]
    by_reason = {
        r["reason"]: int(r["n"])
        for r in store.query_rows(
            "SELECT reason, count() AS n FROM dead_letters_realtime GROUP BY reason"
        )
    }
    assert by_reason == {**faults["expected_dead_letters"], "late": late + len(repeats)}
    # conservation: no repeat was dropped as a duplicate, each is a late dead letter
    assert events + dead == checks.produced(settings, settings.kafka.events_topic)
    late_records = [
        orjson.loads(r["raw"])
        for r in store.query_rows("SELECT raw FROM dead_letters_realtime WHERE reason = 'late'")
    ]
    late_ids = Counter(r["event_id"] for r in late_records)
    assert max(late_ids.values()) == 1 and set(repeats) <= set(late_ids)
    missing = [r for r in late_records if r["event_id"] not in set(repeats)]
    assert len(missing) == late
    stored = {
        str(r["id"]): r["t"]
        for r in store.query_rows(
            "SELECT toString(event_id) AS id, event_type AS t FROM user_events_realtime "
            "WHERE toString(event_id) IN {ids:Array(String)}",
            {"ids": list(late_ids)},
        )
    }
    assert stored.keys() == set(repeats)  # the originals once; the late events not at all
    by_type = Counter(
        r["key"] for r in store.query_rows("SELECT event_type AS key FROM user_events_realtime")
    ) + Counter(r["event_type"] for r in missing)
    assert dict(by_type) == {k: v for k, v in totals["by_event_type"].items() if v}


def check_merged_api(settings: Settings, truth: dict[str, Any], days: list[date]) -> None:
    """The merged answers (all from the published batch days) equal the truth."""
    span = {"start": days[0].isoformat(), "end": days[-1].isoformat()}
    funnel = checks.api(settings, "funnel", **span)
    assert funnel["watermark"] == days[-1].isoformat() and funnel["sources"] == ["batch"]
    assert funnel["sessions"] == len(truth["sessions"]) == truth["funnel"]["sessions"]
    steps = {s["step"]: s["sessions"] for s in funnel["steps"]}
    assert steps["page_view"] == truth["funnel"]["page_view"]
    assert checks.api(settings, "funnel", source="batch", **span) == funnel | {"source": "batch"}
    tiers = {r["user_tier"]: r for r in checks.api(settings, "tiers", **span)}
    sessions = truth["sessions"]
    assert {t: r["sessions"] for t, r in tiers.items()} == Counter(s["tier"] for s in sessions)
    for tier, row in tiers.items():
        mine = [s for s in sessions if s["tier"] == tier]
        assert row["converted_sessions"] == sum(s["converted"] for s in mine), tier
        gross = sum((Decimal(s["gross_bookings"]) for s in mine), Decimal(0))
        assert Decimal(str(row["revenue"])).quantize(Decimal("0.01")) == gross, tier
    revenue = checks.api(settings, "revenue", interval="day", **span)
    assert [(r["bucket"][:10], r["source"]) for r in revenue] == [
        (d.isoformat(), "batch") for d in days
    ]
    for row in revenue:
        completed = truth["revenue_by_day"].get(row["bucket"][:10], {})
        expected = sum((Decimal(v) for v in completed.values()), Decimal(0))
        assert Decimal(str(row["revenue"])).quantize(Decimal("0.01")) == expected
    products = checks.api(settings, "products/top", limit="100", **span)
    assert products and all(p["category"] and p["name"] != p["product_id"] for p in products)
    by_type = truth["totals"]["by_event_type"]
    for kind, column in (
        ("product_view", "views"),
        ("add_to_cart", "add_to_carts"),
        ("purchase", "purchases"),
    ):
        assert sum(p[column] for p in products) == by_type[kind], kind
    gross = sum(
        (Decimal(v) for per in truth["gross_bookings_by_day"].values() for v in per.values()),
        Decimal(0),
    )
    assert Decimal(str(sum(p["revenue"] for p in products))).quantize(Decimal("0.01")) == gross


def check_reconciliation(result: DemoResult, truth: dict[str, Any]) -> None:
    """Unexplained 0, batch = truth, and the late drift attributed with the exact counts."""
    assert result.batch is not None
    faults = truth["faults"]
    late = {"events": Decimal(0), "dead_letters": Decimal(0)}
    moved: Counter[str] = Counter()  # per metric, the tier moves' differences: 0 in total
    for day in result.batch.reconciliations:
        assert not day.failed, day.findings
        assert day.status in ("ok", "incomplete"), day.status
        for row in day.rows:
            assert row["unexplained"] == 0, row
            assert row["batch_vs_truth"] in (None, 0), row
            assert row["duplicate"] == 0, row
            if row["metric"] in late:
                late[row["metric"]] += row["late"]
            if row["metric"].startswith("transactions") or row["metric"] in (
                "revenue", "gross_bookings", "refunds",
            ):  # fmt: skip
                # the faults are on events only: what differs is a tier moved in between
                assert row["diff"] == row["tier"], row
                moved[row["metric"].split("/")[0]] += row["diff"]
    assert all(total == 0 for total in moved.values()), moved
    # the late events are missing from speed; every late record is one more speed dead letter
    assert late == {
        "events": -faults["late_events"],
        "dead_letters": faults["late_events"] + faults["duplicates_injected"],
    }


def test_demo_end_to_end() -> None:
    settings = stack_settings("e2e", port_offset=PORT_OFFSET + 1000)
    # the lake commits every 5 s: the batch half waits less for the archiver
    lake = settings.lake.model_copy(update={"commit_interval": "5 seconds"})
    settings = settings.model_copy(update={"lake": lake})
    shutil.rmtree(settings.home / "data", ignore_errors=True)
    try:
        result = run_demo(settings, CONFIG, say=print, watch=lambda *_: None)
        assert result.produced is not None and result.produced.delivery_errors == 0
        assert result.caught_up, result.final
        assert result.truth_path is not None and result.batch is not None
        truth = orjson.loads(result.truth_path.read_bytes())
        with Resources(settings).store(role="reader") as store:
            check_realtime_against_truth(settings, store, truth)
        # Freshness was measured while the traffic ran.
        p50, p95 = result.freshness["p50"], result.freshness["p95"]
        assert p50 is not None and p95 is not None and 0 <= p50 <= p95

        days = result.batch.days
        assert [p.day for p in result.batch.publications] == days
        assert all(p.published for p in result.batch.publications)
        assert result.churn.changes > 0 and result.churn_log is not None
        tiered = retiered(truth, read_churn_log(result.churn_log))
        check_merged_api(settings, tiered, days)
        check_reconciliation(result, truth)
        # the summary renders (realtime vs batch vs truth, the drift, the merged answers)
        Console(width=160, record=True).print(summary(result, "dashboard", running=True))

        span = {"start": days[0].isoformat(), "end": days[-1].isoformat()}
        funnel = checks.api(settings, "funnel", **span)
        token = settings.serving.api_token.get_secret_value()
        shown = screenshot_dashboard(settings.serving.endpoint, token, funnel)
        assert shown == {step["step"]: step["sessions"] for step in funnel["steps"]}

        report = {
            "produced_records": result.produced.records,
            "valid_events": result.produced.valid_events,
            "accepted_events": truth["totals"]["events"],
            "late_events": truth["faults"]["late_events"],
            "long_distance_duplicates": truth["faults"]["duplicates_injected"],
            "dead_letters": truth["faults"]["expected_dead_letters"],
            "sessions": len(truth["sessions"]),
            "freshness_s": result.freshness,
            "reconcile": {d.day.isoformat(): d.status for d in result.batch.reconciliations},
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "e2e-demo.json").write_text(json.dumps(report, indent=2))
        print("e2e demo:", json.dumps(report))

        # `down` stops the Spark drivers between micro-batches: no traceback in their logs
        pipeline = ["archiver", "speed", "serving"]
        stopped = Stack(settings).down(pipeline, progress=lambda line: None)
        assert sorted(stopped) == sorted(pipeline)
        for name in pipeline:
            log = (settings.log_dir / f"{name}.log").read_text(errors="replace")
            this_run = log.rsplit("lambdapipe start", 1)[-1]
            assert "Traceback" not in this_run, f"{name}.log: {this_run[-3000:]}"
    finally:  # data and logs stay for a look; the next run starts from empty data
        Stack(settings).down(progress=lambda line: None)
