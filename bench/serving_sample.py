"""Seeded synthetic realtime batches, shaped like the speed layer's output (test and bench data).

Vectorized with numpy so benchmarks can build millions of rows in seconds; the serving tests
(`from bench.serving_sample import ...`), the benchmarks (`from serving_sample import ...`, run
as `python bench/<script>.py`) and the browser test use it to feed the store without the Kafka
stack. The event
mix, not the journey logic, matters here: the generator package models real shoppers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

EVENT_SHARES = {
    "page_view": 0.35,
    "product_view": 0.25,
    "search": 0.15,
    "add_to_cart": 0.10,
    "purchase": 0.05,
    "remove_from_cart": 0.04,
    "checkout_start": 0.03,
    "login": 0.02,
    "logout": 0.01,
}
TIERS = ("bronze", "silver", "gold", "platinum", "unknown")
TIER_SHARES = (0.58, 0.25, 0.12, 0.03, 0.02)
DEVICES = ("desktop", "mobile", "tablet")
BROWSERS = ("chrome", "safari", "firefox", "edge", "samsung", "other")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SESSION_SPAN_S = 20 * 60


def uuid_strings(rng: np.random.Generator, n: int) -> pa.Array:
    """`n` random version-4 UUIDs as Arrow strings."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    text = np.insert(hexed, [8, 12, 16, 20], ord("-"), axis=1)
    return pa.array(text.view("S36").ravel()).cast(pa.string())


def _pick(
    rng: np.random.Generator, values: tuple[str, ...], n: int, p: tuple[float, ...] | None = None
) -> pa.Array:
    index = rng.choice(len(values), size=n, p=p)
    return pa.DictionaryArray.from_arrays(pa.array(index, pa.int32()), pa.array(values)).cast(
        pa.string()
    )


@dataclass(frozen=True)
class Batch:
    """Events, transactions and sessions of one synthetic micro-batch."""

    events: pa.Table
    transactions: pa.Table
    sessions: pa.Table


def make_batch(
    events: int,
    seed: int = 0,
    start: datetime | None = None,
    span_s: float = 3600.0,
    products: int = 1000,
    session_span_s: float = _SESSION_SPAN_S,
) -> Batch:
    """About `events` events in sessions of ~10 events over `span_s` seconds from `start`.

    Events of a session fall within `session_span_s` of its start, so event times cover
    `span_s + session_span_s`. `start` defaults to just far enough before now that no event is in
    the future (and all are inside the tables' retention TTL).
    """
    rng = np.random.default_rng(seed)
    start = start or datetime.now(UTC) - timedelta(seconds=span_s + session_span_s)
    n_sessions = max(1, events // 10)
    session_of = np.sort(rng.integers(0, n_sessions, size=events))
    session_ids = uuid_strings(rng, n_sessions)
    user_ids = uuid_strings(rng, max(1, n_sessions // 2))
    user_of_session = rng.integers(0, len(user_ids), size=n_sessions)
    session_start_ms = int(start.timestamp() * 1000) + rng.integers(
        0, int(span_s * 1000), size=n_sessions
    )
    offset_in_session = rng.integers(0, max(1, int(session_span_s * 1000)), size=events)
    ts_ms = session_start_ms[session_of] + offset_in_session
    order = np.lexsort((ts_ms, session_of))
    session_of, ts_ms = session_of[order], ts_ms[order]

    kinds = tuple(EVENT_SHARES)
    kind_index = rng.choice(len(kinds), size=events, p=list(EVENT_SHARES.values()))
    kind = np.array(kinds)[kind_index]
    has_product = np.isin(kind, ["product_view", "add_to_cart", "remove_from_cart", "purchase"])
    is_purchase = kind == "purchase"
    product_pool = uuid_strings(rng, products)
    product_ids = product_pool.take(pa.array(rng.integers(0, products, size=events)))
    quantity = rng.integers(1, 5, size=events)
    amount = np.round(rng.uniform(5, 500, size=events), 2)
    n_purchases = int(is_purchase.sum())
    transaction_ids = uuid_strings(rng, events)

    tier = _pick(rng, TIERS, n_sessions, TIER_SHARES)
    device = _pick(rng, DEVICES, n_sessions)
    browser = _pick(rng, BROWSERS, n_sessions)
    per_event = pa.array(session_of)
    ips = rng.integers(0x0A000000, 0x0AFFFFFF, size=events, dtype=np.uint32)
    decimal = pa.decimal128(10, 2)
    timestamps = pa.array(ts_ms, pa.timestamp("ms", tz="UTC"))
    event_table = pa.table(
        {
            "event_id": uuid_strings(rng, events),
            "user_id": user_ids.take(pa.array(user_of_session[session_of])),
            "session_id": session_ids.take(per_event),
            "event_type": pa.array(kind),
            "timestamp": timestamps,
            "device_type": device.take(per_event),
            "browser": browser.take(per_event),
            "ip_address": pa.array(ips, pa.uint32()),
            "page_url": pa.compute.if_else(
                pa.compute.equal(pa.array(kind), "page_view"), "/home", pa.scalar(None, pa.string())
            ),
            "product_id": pa.array(product_ids.to_numpy(zero_copy_only=False), mask=~has_product),
            "quantity": pa.array(quantity, pa.uint8(), mask=~has_product),
            "transaction_id": pa.array(
                transaction_ids.to_numpy(zero_copy_only=False), mask=~is_purchase
            ),
            "amount": pa.array(amount, pa.float64(), mask=~is_purchase).cast(decimal),
            "user_tier": tier.take(per_event),
        }
    )
    purchases = event_table.filter(pa.array(is_purchase))
    transactions = pa.table(
        {
            "transaction_id": purchases["transaction_id"],
            "user_id": purchases["user_id"],
            "session_id": purchases["session_id"],
            "product_id": purchases["product_id"],
            "quantity": purchases["quantity"],
            "unit_price": purchases["amount"],
            "discount_amount": pa.array([Decimal(0)] * n_purchases, decimal),
            "tax_amount": pa.array([Decimal(0)] * n_purchases, decimal),
            "total_amount": purchases["amount"],
            "currency": pa.array(["USD"] * n_purchases),
            "payment_method": _pick(rng, ("credit_card", "paypal", "apple_pay"), n_purchases),
            "status": _pick(
                rng, ("completed", "pending", "failed"), n_purchases, (0.9, 0.05, 0.05)
            ),
            "timestamp": purchases["timestamp"],
            "user_tier": purchases["user_tier"],
        }
    )
    return Batch(event_table, transactions, sessions_of(event_table))


def sessions_of(events: pa.Table) -> pa.Table:
    """One row per session of `events`, as the speed layer's sessionizer emits it."""
    grouped = events.group_by("session_id").aggregate(
        [
            ("user_id", "min"),
            ("timestamp", "min"),
            ("timestamp", "max"),
            ("event_type", "count"),
            ("device_type", "min"),
            ("browser", "min"),
            ("user_tier", "min"),
        ]
    )
    counts = {}
    for kind in EVENT_SHARES:
        per_kind = (
            events.filter(pa.compute.equal(events["event_type"], kind))
            .group_by("session_id")
            .aggregate([("event_type", "count")])
        )
        counts[kind] = dict(
            zip(
                per_kind["session_id"].to_pylist(),
                per_kind["event_type_count"].to_pylist(),
                strict=True,
            )
        )
    money = (
        events.filter(pa.compute.equal(events["event_type"], "purchase"))
        .group_by("session_id")
        .aggregate([("amount", "sum"), ("quantity", "sum")])
    )
    revenue = dict(
        zip(money["session_id"].to_pylist(), money["amount_sum"].to_pylist(), strict=True)
    )
    items = dict(
        zip(money["session_id"].to_pylist(), money["quantity_sum"].to_pylist(), strict=True)
    )
    ids = grouped["session_id"].to_pylist()
    start, end = grouped["timestamp_min"], grouped["timestamp_max"]
    duration = pa.compute.divide(
        pa.compute.subtract(end.cast(pa.int64()), start.cast(pa.int64())), 1000
    )

    def per_session(kind: str) -> pa.Array:
        return pa.array([counts[kind].get(s, 0) for s in ids], pa.uint16())

    purchases = per_session("purchase")
    return pa.table(
        {
            "session_id": grouped["session_id"],
            "user_id": grouped["user_id_min"],
            "session_start": start,
            "session_end": end,
            "duration_s": duration.cast(pa.uint32()),
            "event_count": grouped["event_type_count"].cast(pa.uint32()),
            "page_views": per_session("page_view"),
            "product_views": per_session("product_view"),
            "searches": per_session("search"),
            "add_to_carts": per_session("add_to_cart"),
            "remove_from_carts": per_session("remove_from_cart"),
            "checkout_starts": per_session("checkout_start"),
            "purchases": purchases,
            "logins": per_session("login"),
            "logouts": per_session("logout"),
            "revenue": pa.array([revenue.get(s) or 0 for s in ids], pa.decimal128(10, 2)),
            "items": pa.array([items.get(s) or 0 for s in ids], pa.uint32()),
            "device_type": grouped["device_type_min"],
            "browser": grouped["browser_min"],
            "user_tier": grouped["user_tier_min"],
            "converted": pa.compute.greater(purchases, 0),
        }
    )
