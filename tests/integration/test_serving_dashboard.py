"""Headless Chromium loads the dashboard while batches arrive; its funnel equals the API's, top
products read as their catalogue names and session durations in units that fit them; once a
batch day is published it shows the watermark boundary, and the merged, realtime and batch
funnels equal the API's."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pyarrow as pa
import pytest

from bench.serving_sample import make_batch
from lambdapipe.resources import Resources
from lambdapipe.serving.api import Tier
from lambdapipe.serving.auth import api_headers
from lambdapipe.serving.dimensions import PRODUCTS_DIM
from lambdapipe.serving.publish import CuratedDay, publish_day
from lambdapipe.settings import Settings
from lambdapipe.speed.dimensions import DimensionState
from tests.dashboard import choose_layer, duration, launch, shown_funnel, sign_in

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


def name_products(settings: Settings, product_ids: list[str]) -> None:
    """Catalogue rows for these products, as the speed layer writes them from Debezium."""
    state = DimensionState(PRODUCTS_DIM)
    for n, product_id in enumerate(product_ids):
        row = {
            "product_id": product_id,
            "name": f"Lamp <{n}>",  # markup in a name is shown as text
            "category": "Home & Garden",
            "subcategory": "Lighting",
            "brand": "Lumen",
            "price": "19.99",
            "is_active": True,
            "updated_at": "2026-12-01T09:30:00.000000Z",
        }
        state.apply({"op": "r", "after": row, "source": {"lsn": 100 + n}})
    with Resources(settings).store() as store:
        store.insert_arrow("products_dim", state.changed()[0])


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
            check_names_and_durations(page, serve)
            check_the_batch_boundary(page, serve)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            browser.close()
    finally:
        stop.set()
        feeder.join()


def check_names_and_durations(page: Any, settings: Settings) -> None:
    """Top products show the dimension's names and categories (one left unknown shows its id);
    the tier table's average durations read as `duration` formats the API's seconds."""
    api = f"{settings.serving.endpoint}/api"
    headers = api_headers(settings.serving)
    top = httpx.get(f"{api}/products/top?limit=8", headers=headers).json()
    assert len(top) == 8
    named, unknown = [p["product_id"] for p in top[1:]], top[0]["product_id"]
    name_products(settings, named)
    page.wait_for_function(
        "id => document.querySelector(`[data-product='${id}'] .cat`)?.textContent === "
        "'Home & Garden'",
        arg=named[0],
        timeout=10_000,
    )
    for n, product_id in enumerate(named):
        cell = page.text_content(f"[data-product='{product_id}'] td.product")
        assert cell == f"Lamp <{n}>Home & Garden"
    assert page.text_content(f"[data-product='{unknown}'] td.product") == (
        f"{unknown[:8]}…not in the catalogue"
    )
    # sessions of users the dimension does not know, enough to put `unknown` first by revenue
    extra = make_batch(20_000, seed=77, span_s=600).sessions
    extra = extra.set_column(
        extra.schema.get_field_index("user_tier"),
        "user_tier",
        pa.array(["unknown"] * extra.num_rows, pa.string()),
    )
    with Resources(settings).store() as store:
        store.insert_arrow("user_sessions_realtime", extra, "ui:unknown:s")
    tiers = httpx.get(f"{api}/tiers", headers=headers).json()
    assert {row["user_tier"] for row in tiers} == set(get_args(Tier))
    assert tiers[0]["user_tier"] == "unknown"  # the answer: by revenue
    (unknown_row,) = [row for row in tiers if row["user_tier"] == "unknown"]
    page.wait_for_function(
        "text => document.querySelector(\"[data-duration='unknown']\")?.textContent === text",
        arg=duration(unknown_row["avg_duration_s"]),
        timeout=10_000,
    )
    # the tier table in the contracts' order (the API's enum), not the answer's (by revenue)
    shown_order = page.eval_on_selector_all(
        "#tiertable [data-duration]", "cells => cells.map(c => c.dataset.duration)"
    )
    assert shown_order == list(get_args(Tier))
    for row in tiers:
        shown = page.text_content(f"[data-duration='{row['user_tier']}']")
        assert shown == duration(row["avg_duration_s"])
    for seconds, text in (
        (0.4, "0 s"),
        (42, "42 s"),
        (59.6, "1 min"),
        (185, "3 min 5 s"),
        (3720, "1 h 2 min"),
        (7200, "2 h"),
    ):
        assert page.evaluate("s => duration(s)", seconds) == text
        assert duration(seconds) == text


def publish_yesterday(settings: Settings) -> str:
    """Yesterday (UTC) published as a batch day (its own traffic: no realtime row is on it)."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    start = datetime.combine(yesterday, datetime.min.time(), UTC) + timedelta(hours=1)
    batch = make_batch(4_000, seed=900, start=start, span_s=20 * 3600)
    rows = {
        "user_events_realtime": batch.events,
        "transactions_realtime": batch.transactions,
        "user_sessions_realtime": batch.sessions,
    }
    with Resources(settings).store() as store:
        assert publish_day(store, CuratedDay(yesterday, "browser-test", rows)).published
    return yesterday.isoformat()


def check_the_batch_boundary(page: Any, settings: Settings) -> None:
    """After a publication the page names the watermark and which shown day is batch; each
    layer's funnel, chosen with the switch, equals the API's answer for that layer."""
    api = f"{settings.serving.endpoint}/api"
    headers = api_headers(settings.serving)
    yesterday = publish_yesterday(settings)
    page.wait_for_selector(f"#boundary[data-watermark='{yesterday}']", timeout=10_000)
    today = datetime.now(UTC).date().isoformat()
    assert page.text_content(f"[data-day='{yesterday}']") == f"{yesterday[5:]} · batch"
    assert page.text_content(f"[data-day='{today}']") == f"{today[5:]} · realtime"
    assert f"batch watermark {yesterday}" in (page.text_content("#boundary") or "")
    funnels = {}
    for layer in ("merged", "realtime", "batch", "merged"):
        choose_layer(page, layer)
        expected = httpx.get(f"{api}/funnel?source={layer}", headers=headers).json()
        assert expected["watermark"] == yesterday
        shown = shown_funnel(page, expected)
        assert shown == {step["step"]: step["sessions"] for step in expected["steps"]}
        assert page.text_content("#funnel-src") == " + ".join(expected["sources"])
        funnels[layer] = shown
    # the merged answer is the batch day plus the realtime day, so all three differ
    assert funnels["merged"] == {
        step: funnels["batch"][step] + funnels["realtime"][step] for step in funnels["merged"]
    }
    assert funnels["batch"]["page_view"] > 0 and funnels["realtime"]["page_view"] > 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-merged.png"), full_page=True)
