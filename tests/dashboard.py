"""The dashboard in headless Chromium (Debian's, driven by Playwright), for the browser tests."""

from __future__ import annotations

import math
from typing import Any

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(pw: Any) -> Any:
    """A headless Chromium browser."""
    return pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


def shown_funnel(page: Any, expected: dict[str, Any], timeout_ms: int = 10_000) -> dict[str, int]:
    """Wait until the page's first funnel step shows the API's `expected` count (the page
    refreshes every 2 s), then read every step's number as displayed."""
    page.wait_for_function(
        "n => document.querySelector(\"[data-step='purchase']\") && "
        "document.querySelector(\"[data-step='page_view']\").textContent"
        ".replace(/,/g, '') === String(n)",
        arg=expected["steps"][0]["sessions"],
        timeout=timeout_ms,
    )
    return {
        step["step"]: int(
            (page.text_content(f"[data-step='{step['step']}']") or "0").replace(",", "")
        )
        for step in expected["steps"]
    }


def duration(seconds: float) -> str:
    """The dashboard's reading of a duration, written again here as the test's reference."""
    t = max(0, math.floor(seconds + 0.5))  # JavaScript's Math.round
    hours, minutes, rest = t // 3600, t % 3600 // 60, t % 60
    if t < 60:
        return f"{rest} s"
    if t < 3600:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def choose_layer(page: Any, layer: str, timeout_ms: int = 10_000) -> None:
    """Press the dashboard's merged|realtime|batch switch; wait until a refresh drew that layer."""
    page.click(f"#lambda [data-layer='{layer}']")
    page.wait_for_function(
        "layer => document.body.dataset.layer === layer", arg=layer, timeout=timeout_ms
    )


def sign_in(page: Any, token: str) -> None:
    """Sign the dashboard in with the API token, through its form."""
    page.wait_for_selector("#signin:not([hidden])")
    page.fill("#token", token)
    page.click("#signin button")
