"""The real-time pipeline end to end, as `lambdapipe demo` runs it: a fresh stack, schemas,
dimensions + Debezium, `lambdapipe serve`, the Spark speed layer, a minute of paced traffic with
faults; then the serving store against the generator's truth, freshness, and the dashboard.

Tier churn is off here: the truth's per-tier numbers are the population's tiers, so they are only
exact when tiers do not move (the speed layer's tier-change test covers churn).
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lambdapipe.demo.run import DemoConfig, run_demo
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.serving.auth import api_headers
from tests import pipeline_checks as checks
from tests.dashboard import launch, shown_funnel, sign_in
from tests.stacks import PORT_OFFSET, stack_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CONFIG = DemoConfig(
    minutes=1.0,
    rate=1_000.0,
    churn_rate=0.0,
    # the generator paces event time by the wall clock: a stalled generator (a busy CI machine)
    # pauses every session, so the gap must be well above such stalls
    session_gap_s=60,
    lateness_s=90,
    max_future_skew_s=10,
    keep_running=True,
)
TICK_USER = "00000000-0000-4000-8000-00000000beef"


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


def test_demo_end_to_end() -> None:
    settings = stack_settings("e2e", port_offset=PORT_OFFSET + 1000)
    shutil.rmtree(settings.home / "data", ignore_errors=True)
    try:
        result = run_demo(settings, CONFIG, say=print, watch=lambda *_: None)
        assert result.produced is not None and result.produced.delivery_errors == 0
        assert result.caught_up, result.final
        assert result.truth_path is not None
        truth = orjson.loads(result.truth_path.read_bytes())
        kafka = settings.kafka
        with Resources(settings).store(role="reader") as store:
            # produced = accepted + dead-lettered + duplicates dropped; everything equals truth
            checks.check_against_truth(
                store,
                truth,
                checks.produced(settings, kafka.events_topic),
                checks.produced(settings, kafka.transactions_topic),
                checks.dlq_headers(settings, kafka.dlq_topic),
            )
            # Freshness was measured while the traffic ran.
            p50, p95 = result.freshness["p50"], result.freshness["p95"]
            assert p50 is not None and p95 is not None and 0 <= p50 <= p95

            # Close every session: one event later than the last one + gap + lateness + skew.
            newest = checks.one(store, "SELECT max(timestamp) FROM user_events_realtime")
            due = newest.replace(tzinfo=UTC) + timedelta(
                seconds=CONFIG.session_gap_s + CONFIG.lateness_s + CONFIG.max_future_skew_s + 3
            )
            while datetime.now(UTC) < due:
                time.sleep(1)
            tick = "00000000-0000-4000-8000-0000000e2e00"
            checks.send_event(settings, kafka.events_topic, TICK_USER, tick)
            deadline = time.monotonic() + 180
            while (
                checks.one(store, "SELECT count() FROM user_sessions_realtime")
                < len(truth["sessions"])
                and time.monotonic() < deadline
            ):
                time.sleep(2)
            checks.check_sessions(store, truth)

        days = {"start": str(datetime.now(UTC).date() - timedelta(days=1))}
        days["end"] = str(datetime.now(UTC).date() + timedelta(days=1))
        serving = settings.serving
        funnel = httpx.get(
            f"{serving.endpoint}/api/funnel", params=days, headers=api_headers(serving)
        ).json()
        assert funnel["sessions"] == len(truth["sessions"])
        # the catalogue reached the store through Debezium and the speed job: products read as names
        top = httpx.get(
            f"{serving.endpoint}/api/products/top",
            params={**days, "limit": 20},
            headers=api_headers(serving),
        ).json()
        assert top and all(p["category"] and p["name"] != p["product_id"] for p in top), top
        token = serving.api_token.get_secret_value()
        shown = screenshot_dashboard(serving.endpoint, token, funnel)
        assert shown == {step["step"]: step["sessions"] for step in funnel["steps"]}

        report = {
            "produced_records": result.produced.records,
            "valid_events": result.produced.valid_events,
            "accepted_events": truth["totals"]["events"],
            "dead_letters": truth["faults"]["expected_dead_letters"],
            "sessions": len(truth["sessions"]),
            "freshness_s": result.freshness,
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
