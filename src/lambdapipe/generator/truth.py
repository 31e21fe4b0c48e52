"""Ground truth: the right answers for what the generator produced, for checking every layer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from lambdapipe.generator.clock import day_name
from lambdapipe.generator.population import TIERS
from lambdapipe.generator.sampling import money

EVENT_TYPES: Final = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "purchase",
    "remove_from_cart",
    "checkout_start",
    "login",
    "logout",
)
# Truth keys events of users missing from the dimensions under this tier, like enrichment does.
TRUTH_TIERS: Final = (*TIERS, "unknown")
N_TIERS: Final = len(TRUTH_TIERS)
# the sessions, then the sessions with at least one event of each step (docs/data-model.md)
FUNNEL: Final = (
    "sessions",
    "page_view",
    "product_view",
    "add_to_cart",
    "checkout_start",
    "purchase",
)
MS_PER_DAY: Final = 86_400_000


@dataclass(slots=True)
class SessionTruth:
    """One session as generated; money in cents, named as in docs/data-model.md: gross bookings
    sum its purchase amounts (any status), revenue those of completed transactions."""

    session_id: str
    user_id: str
    tier: int
    start: str
    end: str = ""
    events: int = 0
    converted: bool = False
    gross_bookings_cents: int = 0
    revenue_cents: int = 0
    funnel: int = 0  # bit i set: the session has an event of step FUNNEL[i + 1]
    # a watched user's session (docs/generator.md#tier-churn): each event as [epoch ms, type],
    # a purchase as [ms, "purchase", total_amount, status] (its transaction); else None
    trail: list[list[Any]] | None = None


@dataclass(slots=True)
class Truth:
    """Accumulated answers of one stream (shard); `merge` combines streams in shard order."""

    # day number -> flat [event_type * N_TIERS + tier] counts
    counts: dict[int, list[int]] = field(default_factory=dict)
    # day -> cents per tier: every transaction, completed ones, refunded ones
    gross_bookings: dict[int, list[int]] = field(default_factory=dict)
    revenue: dict[int, list[int]] = field(default_factory=dict)
    refunds: dict[int, list[int]] = field(default_factory=dict)
    transactions: dict[int, list[int]] = field(default_factory=dict)  # day -> count per tier
    sessions: list[SessionTruth] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    late: int = 0
    out_of_order: int = 0
    watch_share: float = 0.0  # the share of users whose sessions carry a trail

    def day_counts(self, ms: int) -> list[int]:
        """The event counters of the day containing `ms`, created on first use."""
        day = ms // MS_PER_DAY
        counts = self.counts.get(day)
        if counts is None:
            counts = self.counts[day] = [0] * (len(EVENT_TYPES) * N_TIERS)
        return counts

    def add_transaction(self, ms: int, tier: int, total_cents: int, status: str) -> None:
        """Count one transaction (product line) and its money on its event day."""
        day = ms // MS_PER_DAY
        if day not in self.transactions:
            for per_day in self._money_and_count():
                per_day[day] = [0] * N_TIERS
        self.transactions[day][tier] += 1
        self.gross_bookings[day][tier] += total_cents
        if status == "completed":
            self.revenue[day][tier] += total_cents
        elif status == "refunded":
            self.refunds[day][tier] += total_cents

    def _money_and_count(self) -> tuple[dict[int, list[int]], ...]:
        return (self.gross_bookings, self.revenue, self.refunds, self.transactions)

    def add_dead_letter(self, reason: str) -> None:
        """Count one injected record the validator must dead-letter with `reason`."""
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1

    def merge(self, other: Truth) -> None:
        """Add `other`'s answers to these."""
        for mine, theirs in zip(
            (self.counts, *self._money_and_count()),
            (other.counts, *other._money_and_count()),
            strict=True,
        ):
            for day, values in theirs.items():
                if day in mine:
                    mine[day] = [a + b for a, b in zip(mine[day], values, strict=True)]
                else:
                    mine[day] = list(values)
        self.sessions.extend(other.sessions)
        for reason, n in other.dead_letters.items():
            self.dead_letters[reason] = self.dead_letters.get(reason, 0) + n
        self.duplicates.extend(other.duplicates)
        self.late += other.late
        self.out_of_order += other.out_of_order
        self.watch_share = max(self.watch_share, other.watch_share)

    def totals_by_type(self) -> dict[str, int]:
        """Valid events per event type over all days and tiers."""
        out = dict.fromkeys(EVENT_TYPES, 0)
        for counts in self.counts.values():
            for i, name in enumerate(EVENT_TYPES):
                out[name] += sum(counts[i * N_TIERS : (i + 1) * N_TIERS])
        return out

    def totals_by_tier(self) -> dict[str, int]:
        """Valid events per tier (including `unknown`) over all days and types."""
        out = dict.fromkeys(TRUTH_TIERS, 0)
        for counts in self.counts.values():
            for i, value in enumerate(counts):
                out[TRUTH_TIERS[i % N_TIERS]] += value
        return out

    def as_json(self) -> dict[str, Any]:
        """The truth document written to `--truth PATH` (format in docs/generator.md)."""
        funnel = dict.fromkeys(FUNNEL, 0)
        funnel["sessions"] = len(self.sessions)
        for s in self.sessions:
            for i, stage in enumerate(FUNNEL[1:]):
                if s.funnel >> i & 1:
                    funnel[stage] += 1
        return {
            "events_by_day": {
                day_name(day): {
                    name: {
                        tier: counts[i * N_TIERS + t]
                        for t, tier in enumerate(TRUTH_TIERS)
                        if counts[i * N_TIERS + t]
                    }
                    for i, name in enumerate(EVENT_TYPES)
                }
                for day, counts in sorted(self.counts.items())
            },
            "totals": {
                "events": sum(self.totals_by_type().values()),
                "by_event_type": self.totals_by_type(),
                "by_tier": self.totals_by_tier(),
                "transactions": sum(sum(v) for v in self.transactions.values()),
            },
            "funnel": funnel,
            "gross_bookings_by_day": _money_by_day(self.gross_bookings),
            "revenue_by_day": _money_by_day(self.revenue),
            "refunds_by_day": _money_by_day(self.refunds),
            "transactions_by_day": {
                day_name(day): {TRUTH_TIERS[t]: n for t, n in enumerate(per_tier) if n}
                for day, per_tier in sorted(self.transactions.items())
            },
            "faults": {
                "expected_dead_letters": dict(sorted(self.dead_letters.items())),
                "dead_letters_total": sum(self.dead_letters.values()),
                "duplicates_injected": len(self.duplicates),
                "duplicate_event_ids": self.duplicates,
                "late_events": self.late,
                "out_of_order_events": self.out_of_order,
            },
            "sessions": [
                {
                    "session_id": s.session_id,
                    "user_id": s.user_id,
                    "tier": TRUTH_TIERS[s.tier],
                    "start": s.start,
                    "end": s.end,
                    "events": s.events,
                    "converted": s.converted,
                    "gross_bookings": money(s.gross_bookings_cents),
                    "revenue": money(s.revenue_cents),
                }
                for s in self.sessions
            ],
            "watched": {
                "share": self.watch_share,
                "sessions": [
                    {
                        "session_id": s.session_id,
                        "user_id": s.user_id,
                        "tier": TRUTH_TIERS[s.tier],
                        "events": s.trail,
                    }
                    for s in self.sessions
                    if s.trail
                ],
            },
        }


def _money_by_day(cents: dict[int, list[int]]) -> dict[str, dict[str, str]]:
    """Per day, per tier with money, the amount as a 2-decimal string."""
    return {
        day_name(day): {TRUTH_TIERS[t]: money(c) for t, c in enumerate(per_tier) if c}
        for day, per_tier in sorted(cents.items())
    }


def merged(truths: Iterable[Truth]) -> Truth:
    """One Truth from many, in the given order."""
    total = Truth()
    for truth in truths:
        total.merge(truth)
    return total


def write_truth(truth: Truth, path: Path) -> None:
    """Write the truth document as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(truth.as_json(), option=orjson.OPT_INDENT_2))
