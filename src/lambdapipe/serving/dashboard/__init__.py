"""The live dashboard: one static page (hand-written JS and inline SVG, no CDN, no build step).

It polls the JSON API every 2 s and draws the funnel, tiers, top products, events/s,
dead-letter rate and freshness.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def dashboard_html() -> str:
    """The dashboard page, read once from the package."""
    return files(__package__).joinpath("index.html").read_text(encoding="utf-8")
