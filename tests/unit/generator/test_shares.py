"""Statistical acceptance: event type shares, activity per tier, weekend transactions."""

from __future__ import annotations

import pytest

from lambdapipe.generator.clock import parse_time
from lambdapipe.generator.faults import FaultSpec
from lambdapipe.generator.journeys import PLAN_PERCENT, ShardStream
from lambdapipe.generator.population import ACTIVITY, TIERS, users
from lambdapipe.generator.run import RunConfig, stream_configs
from lambdapipe.generator.truth import EVENT_TYPES, Truth, merged

START_US = parse_time("2026-03-02T00:00:00Z")  # a Monday


def _truth(events: int, step_us: float, n_users: int = 10_000) -> Truth:
    config = RunConfig(
        seed=11,
        events=events,
        start_us=START_US,
        step_us=step_us,
        users=n_users,
        products=1_000,
        workers=1,
        sink="stdout",
        faults=FaultSpec(),
    )
    streams = [ShardStream(c) for c in stream_configs(config)]
    for stream in streams:
        while not stream.window().done:
            pass
    return merged(s.truth for s in streams)


@pytest.fixture(scope="module")
def million() -> Truth:
    return _truth(1_000_000, 1_000.0)


@pytest.mark.slow
def test_event_type_shares_over_1m_events_within_half_a_point(million: Truth) -> None:
    totals = million.totals_by_type()
    assert sum(totals.values()) == 1_000_000
    for name, percent in zip(EVENT_TYPES, PLAN_PERCENT, strict=True):
        assert abs(100 * totals[name] / 1_000_000 - percent) < 0.5, (name, totals[name])


@pytest.mark.slow
def test_events_per_user_follow_tier_activity(million: Truth) -> None:
    population = users(10_000, seed=11)
    by_tier = million.totals_by_tier()
    per_user = [by_tier[t] / sum(u.tier == t for u in population) for t in TIERS]
    for tier, activity, value in zip(TIERS, ACTIVITY, per_user, strict=True):
        assert value / per_user[0] == pytest.approx(activity, rel=0.10), tier


@pytest.mark.slow
def test_weekend_days_carry_1_3x_the_transactions() -> None:
    # 6 s per event on weekdays: 14,400 events a weekday, 18,720 a weekend day, 4 whole weeks.
    truth = _truth(4 * (5 * 14_400 + 2 * 18_720), 6e6)
    days = sorted(truth.transactions.items())[:28]
    assert len(days) == 28
    weekday = [sum(n) for day, n in days if (day + 3) % 7 < 5]
    weekend = [sum(n) for day, n in days if (day + 3) % 7 >= 5]
    assert len(weekend) == 8
    ratio = (sum(weekend) / len(weekend)) / (sum(weekday) / len(weekday))
    assert ratio == pytest.approx(1.3, rel=0.05)


def test_session_truth_adds_up() -> None:
    truth = _truth(100_000, 1_000.0)
    assert sum(s.events for s in truth.sessions) == 100_000
    bookings = sum(sum(v) for v in truth.gross_bookings.values())
    revenue = sum(sum(v) for v in truth.revenue.values())
    refunds = sum(sum(v) for v in truth.refunds.values())
    assert sum(s.gross_bookings_cents for s in truth.sessions) == bookings
    assert sum(s.revenue_cents for s in truth.sessions) == revenue
    # completed and refunded lines are some of the booked ones, and the others are there too
    assert 0 < refunds < bookings - revenue < bookings
    assert len({s.session_id for s in truth.sessions}) == len(truth.sessions)
