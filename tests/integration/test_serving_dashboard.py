"""Headless Chromium loads the dashboard while batches arrive; its funnel equals the API's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.serving_sample import make_batch
from lambdapipe.resources import Resources
from lambdapipe.serving.auth import api_headers
from lambdapipe.settings import Settings
from tests.dashboard import launch, shown_funnel, sign_in

from .test_serving_http import serve  # noqa: F401  (module-scoped serve fixture)

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def feed(settings: Settings, stop: threading.Event) -> None:
    with Resources(settings).store() as store:
        for index in range(6):
            if stop.is_set():
                return
            batch = make_batch(3_000, seed=100 + index, span_s=600)
            store.insert_arrow("user_events_realtime", batch.events, f"ui:{index}:e")
            store.insert_arrow("user_sessions_realtime", batch.sessions, f"ui:{index}:s")
            store.insert_arrow("transactions_realtime", batch.transactions, f"ui:{index}:t")
            time.sleep(0.5)


def test_dashboard_funnel_matches_api(serve: Settings) -> None:  # noqa: F811
    playwright = pytest.importorskip("playwright.sync_api")
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(serve, stop))
    feeder.start()
    try:
        with playwright.sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(serve.serving.endpoint + "/")
            sign_in(page, serve.serving.api_token.get_secret_value())
            page.wait_for_selector("[data-step='page_view']")
            feeder.join()
            # Data has stopped arriving: after the next refresh the page and the API agree.
            expected = httpx.get(
                f"{serve.serving.endpoint}/api/funnel", headers=api_headers(serve.serving)
            ).json()
            shown = shown_funnel(page, expected)
            assert shown == {step["step"]: step["sessions"] for step in expected["steps"]}
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            browser.close()
    finally:
        stop.set()
        feeder.join()
