"""Sessions as state machines, and one shard's stream of events and transactions.

Causality lives in the session state: the cart, whether a checkout is open, whether the user is
logged in. Event types are drawn from the plan's shares; a draw that the state forbids (a remove
with an empty cart, say) becomes a debt of that type, paid by the next session whose state allows
it, so every draw is eventually emitted and long-run shares equal the plan. Purchases are not
drawn: a checkout completes (one purchase per cart line) while purchases are below their share,
and is abandoned otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from heapq import heappop, heappush
from typing import Any, Final

import orjson

from lambdapipe.contracts import Reason
from lambdapipe.generator import population as pop
from lambdapipe.generator.clock import Pacer, SimClock, TimestampFormatter
from lambdapipe.generator.faults import MALFORMED_REASONS, SCHEMA_REASONS, FaultSpec, faulty_record
from lambdapipe.generator.sampling import AliasTable, cents, money, uuid_from_bits
from lambdapipe.generator.truth import EVENT_TYPES, N_TIERS, SessionTruth, Truth

PV, PRV, SEARCH, ADD, PURCHASE, REMOVE, CHECKOUT, LOGIN, LOGOUT = range(9)
PLAN_PERCENT: Final = (35, 25, 15, 10, 5, 4, 3, 2, 1)
PURCHASE_SHARE: Final = PLAN_PERCENT[PURCHASE] / 100
_DRAWN: Final = tuple(t for t in range(9) if t != PURCHASE)
UNKNOWN_TIER: Final = 4
# Session shape, tuned so sessions average ~15 events; see tests/unit/generator/test_shares.py.
END_PROBABILITY: Final = 0.07
START_LOGGED_IN: Final = 0.45
DEBT_PAYMENT: Final = 0.5
TAX_PERCENT: Final = 8
# Quantity per cart line grows with the tier: 1 + floor(u * u * spread).
QUANTITY_SPREAD: Final = (2.0, 2.5, 3.0, 4.0, 2.0)
DEVICES: Final = (("desktop", 50), ("mobile", 42), ("tablet", 8))
BROWSERS: Final = (
    ("chrome", 55),
    ("safari", 20),
    ("firefox", 8),
    ("edge", 8),
    ("samsung", 5),
    ("other", 4),
)
PAYMENTS: Final = (
    ("credit_card", 40),
    ("debit_card", 20),
    ("paypal", 18),
    ("apple_pay", 10),
    ("google_pay", 8),
    ("gift_card", 4),
)
STATUSES: Final = (("completed", 92), ("pending", 4), ("failed", 3), ("refunded", 1))
# Premium treatment: platinum payments are retried until they go through, never `failed`.
PLATINUM_STATUSES: Final = (("completed", 95), ("pending", 4), ("refunded", 1))
SHOP: Final = "https://shop.example.com"
PAGES: Final = tuple(
    f"{SHOP}{p}"
    for p in (
        "/",
        "/deals",
        "/new",
        "/c/electronics",
        "/c/footwear",
        "/c/apparel",
        "/c/home",
        "/help",
    )
)
REFERRERS: Final = (
    None,
    None,
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://news.example.org/",
    f"{SHOP}/",
)
QUERIES: Final = (
    "running shoes",
    "laptop",
    "headphones",
    "rain jacket",
    "coffee grinder",
    "lego",
    "desk lamp",
    "yoga mat",
    "novel",
    "sunscreen",
    "tent",
    "usb-c cable",
)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Everything that determines one shard's stream; equal configs give equal bytes."""

    seed: int
    shard: int
    shards: int
    events: int
    start_us: int
    step_us: float
    users: int
    products: int
    window: int
    faults: FaultSpec
    paced: bool = False
    # another run of the same population: other visits and ids (0: the seed's own stream)
    run: int = 0
    # the share of users whose every event the truth records (population.watched)
    watch_share: float = 0.0


@dataclass(slots=True)
class Chunk:
    """One window of a shard: serialized records with their Kafka keys, and counters."""

    events: list[bytes]
    event_keys: list[bytes]
    transactions: list[bytes]
    transaction_keys: list[bytes]
    valid_events: int
    done: bool
    type_counts: list[int]


class Session:
    """The state of one visit: identity, device, cart and checkout, and its running truth."""

    __slots__ = (
        "browser",
        "cart",
        "checkout_open",
        "device",
        "ip",
        "key",
        "last_ms",
        "last_product",
        "logged_in",
        "order",
        "pending",
        "session_id",
        "slot_user",
        "tier",
        "truth",
        "user_id",
    )

    def __init__(
        self,
        user_id: str,
        tier: int,
        slot_user: int,
        rng: random.Random,
        devices: AliasTable,
        browsers: AliasTable,
        watched: bool = False,
    ) -> None:
        self.user_id = user_id
        self.key = user_id.encode()
        self.tier = tier
        self.slot_user = slot_user
        self.session_id = uuid_from_bits(rng.getrandbits(128))
        self.device = DEVICES[devices.sample(rng)][0]
        self.browser = BROWSERS[browsers.sample(rng)][0]
        bits = rng.getrandbits(32)
        self.ip = f"{1 + (bits >> 24) % 223}.{bits >> 16 & 255}.{bits >> 8 & 255}.{bits & 255}"
        self.logged_in = rng.random() < START_LOGGED_IN
        self.cart: dict[int, int] = {}
        self.checkout_open = False
        self.pending: list[tuple[int, int]] = []
        self.order: tuple[str, str] = ("", "")
        self.last_product = -1
        self.last_ms = -1
        self.truth = SessionTruth(self.session_id, user_id, tier, "")
        if watched:
            self.truth.trail = []


@lru_cache(maxsize=2)
def _users(n: int, seed: int) -> tuple[pop.User, ...]:
    return tuple(pop.users(n, seed))


@lru_cache(maxsize=2)
def _products(m: int, seed: int) -> tuple[pop.Product, ...]:
    return tuple(pop.products(m, seed))


def _table(pairs: tuple[tuple[str, int], ...]) -> AliasTable:
    return AliasTable([w for _, w in pairs])


def stream_key(config: StreamConfig) -> str:
    """The seed of a shard's RNG: run 0 keeps the key every earlier stream was drawn with."""
    key = f"stream:{config.seed}:{config.shard}"
    return key if config.run == 0 else f"{key}:run:{config.run}"


class ShardStream:
    """The events and transactions of one shard: its own users, RNG, clock and fault queues."""

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self.rng = random.Random(stream_key(config))  # noqa: S311 - a seeded simulation
        people = _users(config.users, config.seed)[config.shard :: config.shards]
        self.user_ids = [u.user_id for u in people]
        self.user_tiers = [pop.tier_index(u.tier) for u in people]
        share = config.watch_share
        self.user_watched = [share > 0 and pop.watched(u.user_id, share) for u in people]
        catalogue = _products(config.products, config.seed)
        self.product_ids = [p.product_id for p in catalogue]
        self.product_urls = [f"{SHOP}/p/{p.product_id[:8]}" for p in catalogue]
        self.prices = [cents(p.price) for p in catalogue]
        self.popularity = pop.popularity(config.products, config.seed)
        self.user_choice = AliasTable([pop.ACTIVITY[t] for t in self.user_tiers] or [1.0])
        self.draw = AliasTable([PLAN_PERCENT[t] for t in _DRAWN])
        self.devices, self.browsers = _table(DEVICES), _table(BROWSERS)
        self.payments = _table(PAYMENTS)
        self.statuses, self.platinum_statuses = _table(STATUSES), _table(PLATINUM_STATUSES)
        # Concurrent sessions; a user has at most one open session.
        self.slots_n = max(1, min(256, len(self.user_ids) // 8))
        self.active: set[int] = set()
        self.clock = SimClock(
            config.start_us + int(config.step_us * config.shard), config.step_us * config.shards
        )
        self.pacer = Pacer(config.start_us) if config.paced else None
        self.fmt = TimestampFormatter()
        self.truth = Truth(watch_share=share)
        self.debts = [0] * 9
        self.type_counts = [0] * 9
        self.remaining = config.events // config.shards + (
            1 if config.shard < config.events % config.shards else 0
        )
        self.slots = [self._new_session() for _ in range(self.slots_n)]
        self.day_lo = self.day_hi = 0
        self.day_counts: list[int] = []
        self.held_count: list[tuple[int, int, bytes, bytes]] = []  # (release seq, seq, line, key)
        # (release us, seq, line, key): late events and delayed duplicates
        self.held_time: list[tuple[int, int, bytes, bytes]] = []
        # a delayed fault is drawn only while the stream has its delay left, so that each one
        # arrives that far behind its place rather than being flushed early at the end
        self.end_us = self.clock.time_after(self.remaining)
        self.seq = 0

    def _new_session(self) -> Session:
        rng = self.rng
        if rng.random() < self.config.faults.unknown_user or not self.user_ids:
            user_id = uuid_from_bits(rng.getrandbits(128))
            return Session(user_id, UNKNOWN_TIER, -1, rng, self.devices, self.browsers)
        index = self.user_choice.sample(rng)
        for _ in range(4):
            if index not in self.active:
                break
            index = self.user_choice.sample(rng)
        self.active.add(index)
        return Session(
            self.user_ids[index],
            self.user_tiers[index],
            index,
            rng,
            self.devices,
            self.browsers,
            self.user_watched[index],
        )

    def _end_session(self, slot: int, session: Session) -> None:
        self.truth.sessions.append(session.truth)
        self.active.discard(session.slot_user)
        self.slots[slot] = self._new_session()

    def _choose(self, s: Session) -> int:
        """The next event type for `s`: a payable debt, else a draw the state allows."""
        rng, debts = self.rng, self.debts
        if s.pending:
            return PURCHASE
        paid = -1
        if s.cart and debts[REMOVE] and rng.random() < DEBT_PAYMENT:
            paid = REMOVE
        # Checkout debts wait for carts of two lines, so orders have enough lines to buy.
        elif len(s.cart) > 1 and debts[CHECKOUT] and not s.checkout_open:
            paid = CHECKOUT
        elif s.logged_in and debts[LOGOUT] and rng.random() < DEBT_PAYMENT:
            paid = LOGOUT
        elif not s.logged_in and debts[LOGIN]:
            paid = LOGIN
        if paid >= 0:
            debts[paid] -= 1
            return paid
        draw = self.draw
        while True:
            t = _DRAWN[draw.sample(rng)]
            if t <= ADD:
                return t
            if t == REMOVE:
                allowed = bool(s.cart)
            elif t == CHECKOUT:
                allowed = bool(s.cart) and not s.checkout_open
            elif t == LOGIN:
                allowed = not s.logged_in
            else:
                allowed = s.logged_in
            if allowed:
                return t
            debts[t] += 1

    def window(self) -> Chunk:
        """Generate the next window of this shard's stream."""
        count = min(self.config.window, self.remaining)
        self.remaining -= count
        chunk = Chunk([], [], [], [], count, False, [])
        before = list(self.type_counts)
        rng, clock, slots, slots_n = self.rng, self.clock, self.slots, self.slots_n
        faults = self.config.faults
        fault_rate = faults.per_event
        type_counts = self.type_counts
        for _ in range(count):
            now_us = clock.tick()
            if self.pacer is not None:
                self.pacer.wait_until(now_us)
            slot = int(rng.random() * slots_n)
            s = slots[slot]
            t = self._choose(s)
            ms = now_us // 1000
            if ms <= s.last_ms:
                ms = s.last_ms + 1
            s.last_ms = ms
            event = self._event(s, t, ms, chunk)
            type_counts[t] += 1
            if not self.day_lo <= ms < self.day_hi:
                self.day_counts = self.truth.day_counts(ms)
                self.day_lo = ms - ms % 86_400_000
                self.day_hi = self.day_lo + 86_400_000
            self.day_counts[t * N_TIERS + s.tier] += 1
            line = orjson.dumps(event)
            key = s.key
            if fault_rate and rng.random() < fault_rate:
                self._fault(event, line, key, now_us, chunk)
            else:
                chunk.events.append(line)
                chunk.event_keys.append(key)
            if self.held_count or self.held_time:
                self._release(now_us, chunk, flush=False)
            self.seq += 1
            if t == LOGOUT or (
                not s.pending and (not s.cart or s.checkout_open) and rng.random() < END_PROBABILITY
            ):
                self._end_session(slot, s)
        chunk.type_counts = [a - b for a, b in zip(type_counts, before, strict=True)]
        if self.remaining == 0:
            chunk.done = True
            self._release(0, chunk, flush=True)
            for s in self.slots:
                if s.truth.events:
                    self.truth.sessions.append(s.truth)
        return chunk

    def _event(self, s: Session, t: int, ms: int, chunk: Chunk) -> dict[str, Any]:
        rng = self.rng
        ts = self.fmt.format(ms)
        event: dict[str, Any] = {
            "event_id": uuid_from_bits(rng.getrandbits(128)),
            "user_id": s.user_id,
            "session_id": s.session_id,
            "event_type": EVENT_TYPES[t],
            "timestamp": ts,
            "device_type": s.device,
            "browser": s.browser,
            "ip_address": s.ip,
        }
        st = s.truth
        if not st.events:
            st.start = ts
        st.events += 1
        st.end = ts
        if st.trail is not None:
            st.trail.append([ms, EVENT_TYPES[t]])
        if t == PV:
            st.funnel |= 1
            event["page_url"] = PAGES[int(rng.random() * len(PAGES))]
            event["referrer"] = REFERRERS[int(rng.random() * len(REFERRERS))]
        elif t == PRV:
            p = s.last_product = self.popularity.sample(rng)
            event["product_id"] = self.product_ids[p]
            event["page_url"] = self.product_urls[p]
            st.funnel |= 2
        elif t == SEARCH:
            event["search_query"] = QUERIES[int(rng.random() * len(QUERIES))]
            event["results_count"] = int(rng.random() * 500)
        elif t == ADD:
            p = s.last_product
            if p < 0 or p in s.cart or rng.random() < 0.3:
                p = self.popularity.sample(rng)
            u = rng.random()
            quantity = 1 + int(u * u * QUANTITY_SPREAD[s.tier])
            s.cart[p] = min(99, s.cart.get(p, 0) + quantity)
            s.checkout_open = False
            event["product_id"] = self.product_ids[p]
            event["quantity"] = quantity
            st.funnel |= 4
        elif t == PURCHASE:
            self._purchase(s, event, ms, chunk)
        elif t == REMOVE:
            lines = list(s.cart)
            p = lines[int(rng.random() * len(lines))]
            event["product_id"] = self.product_ids[p]
            event["quantity"] = s.cart.pop(p)
            s.checkout_open = False
        elif t == CHECKOUT:
            self._checkout(s, event)
        elif t == LOGIN:
            s.logged_in = True
        return event

    def _checkout(self, s: Session, event: dict[str, Any]) -> None:
        prices = self.prices
        event["cart_value"] = money(sum(prices[p] * q for p, q in s.cart.items()))
        event["item_count"] = sum(s.cart.values())
        s.checkout_open = True
        s.truth.funnel |= 8
        counts = self.type_counts
        if counts[PURCHASE] < PURCHASE_SHARE * sum(counts):
            s.pending = list(s.cart.items())
            s.cart.clear()
            statuses = self.platinum_statuses if s.tier == 3 else self.statuses
            status = (PLATINUM_STATUSES if s.tier == 3 else STATUSES)[statuses.sample(self.rng)]
            s.order = (PAYMENTS[self.payments.sample(self.rng)][0], status[0])

    def _purchase(self, s: Session, event: dict[str, Any], ms: int, chunk: Chunk) -> None:
        """One product line of the open order: the event and its transaction."""
        rng = self.rng
        p, quantity = s.pending.pop()
        if not s.pending:
            s.checkout_open = False
        tier = s.tier
        behaviour = tier if tier < UNKNOWN_TIER else 0
        unit = self.prices[p]
        gross = unit * quantity
        discount = 0
        if rng.random() < pop.DISCOUNT_PROBABILITY[behaviour]:
            discount = (gross * pop.DISCOUNT_PERCENT[behaviour] + 50) // 100
        tax = ((gross - discount) * TAX_PERCENT + 50) // 100
        total = gross - discount + tax
        transaction_id = uuid_from_bits(rng.getrandbits(128))
        event["transaction_id"] = transaction_id
        event["product_id"] = self.product_ids[p]
        event["quantity"] = quantity
        event["amount"] = money(total)
        transaction = {
            "transaction_id": transaction_id,
            "user_id": s.user_id,
            "session_id": s.session_id,
            "product_id": self.product_ids[p],
            "quantity": quantity,
            "unit_price": money(unit),
            "discount_amount": money(discount),
            "tax_amount": money(tax),
            "total_amount": money(total),
            "currency": "USD",
            "payment_method": s.order[0],
            "status": s.order[1],
            "timestamp": event["timestamp"],
        }
        chunk.transactions.append(orjson.dumps(transaction))
        chunk.transaction_keys.append(s.key)
        st = s.truth
        st.converted = True
        st.funnel |= 16
        st.gross_bookings_cents += total
        if s.order[1] == "completed":
            st.revenue_cents += total
        if st.trail is not None:
            st.trail[-1] += [money(total), s.order[1]]
        self.truth.add_transaction(ms, tier, total, s.order[1])

    def _fault(
        self, event: dict[str, Any], line: bytes, key: bytes, now_us: int, chunk: Chunk
    ) -> None:
        """Apply one per-event fault, chosen with the spec's relative rates."""
        f, rng, truth = self.config.faults, self.rng, self.truth
        u = rng.random() * f.per_event
        if u < f.duplicate:
            delay = f.duplicate_delay_us
            if delay is not None and now_us + delay > self.end_us:
                chunk.events.append(line)  # too close to the end: no fault
                chunk.event_keys.append(key)
                return
            chunk.events.append(line)
            chunk.event_keys.append(key)
            if delay is None:
                heappush(self.held_count, (self.seq + rng.randint(1, 50), self.seq, line, key))
            else:
                heappush(self.held_time, (now_us + delay, self.seq, line, key))
            truth.duplicates.append(event["event_id"])
            return
        u -= f.duplicate
        if u < f.late:
            if now_us + f.late_delay_us > self.end_us:
                chunk.events.append(line)  # too close to the end: on time
                chunk.event_keys.append(key)
                return
            heappush(self.held_time, (now_us + f.late_delay_us, self.seq, line, key))
            truth.late += 1
            return
        u -= f.late
        if u < f.out_of_order:
            heappush(self.held_count, (self.seq + rng.randint(1, 5), self.seq, line, key))
            truth.out_of_order += 1
            return
        u -= f.out_of_order
        reasons = MALFORMED_REASONS if u < f.malformed else SCHEMA_REASONS
        reason: Reason = reasons[int(rng.random() * len(reasons))]
        chunk.events.append(line)
        chunk.event_keys.append(key)
        chunk.events.append(faulty_record(event, reason, rng))
        chunk.event_keys.append(key)
        truth.add_dead_letter(reason.value)

    def _release(self, now_us: int, chunk: Chunk, *, flush: bool) -> None:
        """Deliver held events whose time has come (all of them when flushing)."""
        held = self.held_count
        while held and (flush or held[0][0] <= self.seq):
            _, _, line, key = heappop(held)
            chunk.events.append(line)
            chunk.event_keys.append(key)
        late = self.held_time
        while late and (flush or late[0][0] <= now_us):
            _, _, line, key = heappop(late)
            chunk.events.append(line)
            chunk.event_keys.append(key)
