"""Hand-made RAW rows for the warehouse tests, seeded, with their truth computed in Python.

Two days of sessions (one crossing midnight, one user changing tier at noon, unknown users,
every transaction status), the products catalogue of each day and a few dead letters. The
truth is counted here from the rows themselves, never through SQL.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from lambdapipe.warehouse.raw import arrow_schema

DAYS = (date(2026, 3, 2), date(2026, 3, 3))
TIERS = ("bronze", "silver", "gold", "platinum", "unknown")
FUNNEL = ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
COUNTS = {
    "page_view": "page_views",
    "product_view": "product_views",
    "search": "searches",
    "add_to_cart": "add_to_carts",
    "remove_from_cart": "remove_from_carts",
    "checkout_start": "checkout_starts",
    "purchase": "purchases",
    "login": "logins",
    "logout": "logouts",
}
CENT = Decimal("0.01")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def epoch_ms(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp() * 1000)


def session_key(session_id: str, start: datetime) -> str:
    """The RAW contract's batch session key: session_id, '/', epoch ms of its first event."""
    return f"{session_id}/{epoch_ms(start)}"


@dataclass
class Sample:
    events: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    products: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)

    def day_rows(self, table: str, day: date) -> pa.Table:
        """The rows of RAW `table` for batch day `day`, as the batch job would hand them."""
        if table == "products":
            rows = self.products[day]
        elif table == "dead_letters":
            rows = [r for r in self.dead_letters if r["kafka_timestamp"].date() == day]
        else:
            source = self.events if table == "user_events" else self.transactions
            rows = [r for r in source if r["timestamp"].date() == day]
        return pa.Table.from_pylist(rows, schema=arrow_schema(table))


def build_sample(seed: int = 7, sessions_per_day: int = 30) -> Sample:
    """Seeded sessions over DAYS; deterministic for a seed."""
    rng = random.Random(seed)
    sample = Sample()
    catalogue = [
        (_uuid(rng), name, category, Decimal(price))
        for name, category, price in (
            ("Desk Lamp", "home", "24.90"),
            ("Trail Shoe", "sports", "89.00"),
            ("Espresso Cup", "kitchen", "7.50"),
            ("Rain Jacket", "clothing", "129.99"),
        )
    ]
    for day in DAYS:
        sample.products[day] = [
            {
                "product_id": pid,
                "name": name,
                "category": category,
                "subcategory": f"{category}-basics",
                "brand": "Acme",
                "price": price,
                "cost": (price * Decimal("0.6")).quantize(CENT),
                "is_active": True,
                "created_at": datetime(2025, 1, 1),
                "updated_at": datetime(2025, 6, 1),
            }
            for pid, name, category, price in catalogue
        ]
    users = [(_uuid(rng), TIERS[i % 5]) for i in range(12)]
    # this user turns gold at noon of the first day
    changer = _uuid(rng)
    starts: list[tuple[str, str, datetime]] = []
    for day in DAYS:
        base = datetime(day.year, day.month, day.day)
        for _ in range(sessions_per_day):
            user, tier = rng.choice(users)
            starts.append((user, tier, base + timedelta(seconds=rng.randrange(0, 80_000))))
        starts.append((changer, "silver", base + timedelta(hours=9)))
    starts.append((changer, "silver", datetime(2026, 3, 2, 11, 55)))  # crosses the tier change
    starts.append((users[0][0], users[0][1], datetime(2026, 3, 2, 23, 50)))  # crosses midnight
    for user, tier, start in starts:
        _session(rng, sample, user, tier, start, catalogue, changer)
    for i, reason in enumerate(("bad_ip", "not_json", "bad_ip", "business_rule", "too_large")):
        sample.dead_letters.append(
            {
                "source_topic": "events",
                "source_partition": i % 2,
                "source_offset": 1000 + i,
                "kafka_timestamp": datetime(2026, 3, 2 + i % 2, 8, i),
                "event_time": None,
                "reason": reason,
                "event_type": None,
                "detail": "$.ip_address",
                "raw": b"\xc3\x28",
            }
        )
    return sample


def _session(
    rng: random.Random,
    sample: Sample,
    user: str,
    tier: str,
    start: datetime,
    catalogue: list[tuple[str, str, str, Decimal]],
    changer: str,
) -> None:
    session_id = _uuid(rng)
    key = session_key(session_id, start)
    device, browser = rng.choice(("desktop", "mobile", "tablet")), rng.choice(("chrome", "edge"))
    t = start
    cart: dict[str, int] = {}
    prices = {p[0]: p[3] for p in catalogue}
    browsing = ("page_view", "product_view", "search", "add_to_cart", "login")
    plan = ["page_view", *rng.choices(browsing, k=rng.randrange(1, 6))]
    if start.hour == 11 or rng.random() < 0.5:
        plan += ["product_view", "add_to_cart", "checkout_start", "purchase"]
    if rng.random() < 0.3:
        plan.append("logout")
    for kind in plan:
        if kind == "purchase" and not cart:
            continue
        if kind == "checkout_start" and not cart:
            continue
        at_tier = "gold" if user == changer and t >= datetime(2026, 3, 2, 12) else tier
        event: dict[str, Any] = {
            "event_id": _uuid(rng),
            "user_id": user,
            "session_id": session_id,
            "event_type": kind,
            "timestamp": t,
            "device_type": device,
            "browser": browser,
            "ip_address": "203.0.113.7",
            "page_url": "https://shop.example/p" if kind == "page_view" else None,
            "referrer": None,
            "user_tier": at_tier,
            "session_key": key,
            "session_start": start,
        }
        if kind in ("product_view", "add_to_cart"):
            pid = rng.choice(catalogue)[0]
            event["product_id"] = pid
            if kind == "add_to_cart":
                q = rng.randrange(1, 4)
                event["quantity"] = q
                cart[pid] = cart.get(pid, 0) + q
        elif kind == "search":
            event["search_query"] = "lamp"
            event["results_count"] = 3
        elif kind == "checkout_start":
            event["cart_value"] = sum(prices[p] * q for p, q in cart.items())
            event["item_count"] = sum(cart.values())
        if kind == "purchase":
            # one purchase event and one transaction per cart line
            for pid, q in sorted(cart.items()):
                line = dict(event, event_id=_uuid(rng), product_id=pid, quantity=q)
                gross = prices[pid] * q
                discount = (gross * Decimal("0.1")).quantize(CENT) if tier == "gold" else Decimal(0)
                tax = ((gross - discount) * Decimal("0.08")).quantize(CENT)
                total = gross - discount + tax
                txn = _uuid(rng)
                line.update(transaction_id=txn, amount=total)
                sample.events.append(line)
                sample.transactions.append(
                    {
                        "transaction_id": txn,
                        "user_id": user,
                        "session_id": session_id,
                        "product_id": pid,
                        "quantity": q,
                        "unit_price": prices[pid],
                        "discount_amount": discount,
                        "tax_amount": tax,
                        "total_amount": total,
                        "currency": "USD",
                        "payment_method": rng.choice(("paypal", "credit_card")),
                        "status": rng.choice(
                            ("completed",) * 6 + ("refunded", "failed", "pending")
                        ),
                        "timestamp": t,
                        "user_tier": at_tier,
                    }
                )
            cart.clear()
        else:
            sample.events.append(event)
        t += timedelta(seconds=rng.randrange(5, 600), milliseconds=rng.randrange(1000))


# ---- truth ------------------------------------------------------------------------------------


def events_by_day_type_tier(s: Sample) -> dict[tuple[date, str, str], int]:
    return dict(Counter((e["timestamp"].date(), e["event_type"], e["user_tier"]) for e in s.events))


def money_by_day_tier(s: Sample) -> dict[tuple[date, str], tuple[Decimal, Decimal, Decimal]]:
    """(gross bookings, revenue, refunds) per transaction day and tier."""
    out: dict[tuple[date, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for t in s.transactions:
        k = (t["timestamp"].date(), t["user_tier"])
        out[k][0] += t["total_amount"]
        if t["status"] == "completed":
            out[k][1] += t["total_amount"]
        if t["status"] == "refunded":
            out[k][2] += t["total_amount"]
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def sessions(s: Sample) -> dict[str, dict[str, Any]]:
    """Per session key: start, end, counts, converted, revenue, tier at the first event."""
    status = {t["transaction_id"]: (t["status"], t["total_amount"]) for t in s.transactions}
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in s.events:
        by_key[e["session_key"]].append(e)
    out = {}
    for key, events in by_key.items():
        events.sort(key=lambda e: e["timestamp"])
        counts = Counter(e["event_type"] for e in events)
        start, end = events[0]["timestamp"], events[-1]["timestamp"]
        out[key] = {
            "session_date": start.date(),
            "duration_s": (epoch_ms(end) - epoch_ms(start)) // 1000,
            "event_count": len(events),
            **{COUNTS[k]: counts.get(k, 0) for k in COUNTS},
            "converted": counts.get("purchase", 0) > 0,
            "user_tier": events[0]["user_tier"],
            "revenue": sum(
                (
                    status[e["transaction_id"]][1]
                    for e in events
                    if e["event_type"] == "purchase"
                    and status[e["transaction_id"]][0] == "completed"
                ),
                Decimal(0),
            ),
        }
    return out


def funnel_by_day(s: Sample) -> dict[date, dict[str, int]]:
    """Per session day: sessions, and sessions with each funnel step (independently)."""
    out: dict[date, Counter[str]] = defaultdict(Counter)
    for session in sessions(s).values():
        day = out[session["session_date"]]
        day["sessions"] += 1
        for step in FUNNEL:
            day[step] += session[COUNTS[step]] > 0
    return {d: dict(c) for d, c in out.items()}


def dead_letters_by_day_reason(s: Sample) -> dict[tuple[date, str], int]:
    return dict(Counter((d["kafka_timestamp"].date(), d["reason"]) for d in s.dead_letters))
