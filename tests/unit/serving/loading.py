"""Serving test helper: one synthetic batch into the realtime tables."""

from __future__ import annotations

from bench.serving_sample import Batch
from lambdapipe.serving.embedded import EmbeddedStore


def load(store: EmbeddedStore, batch: Batch, token: str = "q:0") -> None:
    """Insert a batch into the three realtime tables with per-table dedup tokens."""
    store.insert_arrow("user_events_realtime", batch.events, f"{token}:user_events_realtime")
    store.insert_arrow(
        "transactions_realtime", batch.transactions, f"{token}:transactions_realtime"
    )
    store.insert_arrow("user_sessions_realtime", batch.sessions, f"{token}:user_sessions_realtime")
