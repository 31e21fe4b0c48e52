"""Record-level acceptance: validity, causality, pricing, ids, faults, determinism, the CLI."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from lambdapipe.contracts import Reason, validate_event, validate_transaction
from lambdapipe.generator.cli import app
from lambdapipe.generator.faults import FaultSpec
from lambdapipe.generator.run import Summary
from lambdapipe.generator.sinks import transactions_path
from tests.unit.generator.outputs import START, read_lines, read_records

Generate = Callable[..., tuple[Summary, Path]]
ALL_FAULTS = (
    "duplicate=0.01,late=0.01:10s,out_of_order=0.01,malformed=0.01,schema=0.03,unknown_user=0.01"
)


@pytest.fixture
def clean(generate: Generate) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Path]:
    _, path = generate(events=100_000)
    events, transactions = read_records(path)
    return events, transactions, path


def test_every_record_validates(
    clean: tuple[list[dict[str, Any]], list[dict[str, Any]], Path],
) -> None:
    _, _, path = clean
    for line in read_lines(path):
        result = validate_event(line)
        assert result.ok, (result.reason, result.detail, line)
    for line in read_lines(transactions_path(path)):
        result = validate_transaction(line)
        assert result.ok, (result.reason, result.detail, line)


def test_ids_are_unique(clean: tuple[list[dict[str, Any]], list[dict[str, Any]], Path]) -> None:
    events, transactions, _ = clean
    assert len({e["event_id"] for e in events}) == len(events) == 100_000
    assert len({t["transaction_id"] for t in transactions}) == len(transactions)


def _check_session(events: list[dict[str, Any]]) -> None:
    cart: Counter[str] = Counter()
    checkout = False
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for i, event in enumerate(events):
        kind = event["event_type"]
        if kind == "add_to_cart":
            cart[event["product_id"]] += event["quantity"]
            checkout = False
        elif kind == "remove_from_cart":
            assert cart[event["product_id"]] >= event["quantity"] > 0, "remove without the item"
            cart[event["product_id"]] -= event["quantity"]
            checkout = False
        elif kind == "checkout_start":
            assert +cart, "checkout with an empty cart"
            assert event["item_count"] == sum(cart.values())
            checkout = True
        elif kind == "purchase":
            assert checkout, "purchase without checkout_start"
            assert cart[event["product_id"]] == event["quantity"], "purchase of a cart line"
            del cart[event["product_id"]]
        elif kind == "logout":
            assert i == len(events) - 1, "logout does not end the session"


def test_every_session_respects_causality(
    clean: tuple[list[dict[str, Any]], list[dict[str, Any]], Path],
) -> None:
    events, _, _ = clean
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        sessions[event["session_id"]].append(event)
    assert len(sessions) > 1_000
    for session in sessions.values():
        assert len({e["user_id"] for e in session}) == 1
        _check_session(session)


def test_transactions_follow_pricing_and_match_purchases(
    clean: tuple[list[dict[str, Any]], list[dict[str, Any]], Path],
) -> None:
    events, transactions, _ = clean
    purchases = {e["transaction_id"]: e for e in events if e["event_type"] == "purchase"}
    assert len(purchases) == len(transactions) > 1_000
    for t in transactions:
        total = (
            Decimal(t["unit_price"]) * t["quantity"]
            - Decimal(t["discount_amount"])
            + Decimal(t["tax_amount"])
        )
        assert Decimal(t["total_amount"]) == total
        p = purchases[t["transaction_id"]]
        assert (p["amount"], p["quantity"], p["product_id"]) == (
            t["total_amount"],
            t["quantity"],
            t["product_id"],
        )
        assert (p["user_id"], p["session_id"], p["timestamp"]) == (
            t["user_id"],
            t["session_id"],
            t["timestamp"],
        )


def test_every_fault_is_rejected_with_the_expected_reason(generate: Generate) -> None:
    summary, path = generate(events=60_000, faults=ALL_FAULTS)
    truth = orjson.loads(path.with_name(path.name + ".truth.json").read_bytes())["faults"]
    rejected: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    for line in read_lines(path):
        result = validate_event(line)
        if result.ok:
            assert result.event is not None
            accepted[result.event["event_id"]] += 1
        else:
            assert result.reason is not None
            rejected[result.reason.value] += 1
    assert dict(rejected) == truth["expected_dead_letters"]
    assert set(rejected) == {r.value for r in Reason}
    assert len(accepted) == summary.valid_events == 60_000
    duplicated = sorted(eid for eid, n in accepted.items() if n > 1)
    assert duplicated == sorted(truth["duplicate_event_ids"])
    assert truth["duplicates_injected"] == len(duplicated) > 0
    assert truth["late_events"] > 0 and truth["out_of_order_events"] > 0


def test_unknown_users_are_not_in_the_population(generate: Generate) -> None:
    from lambdapipe.generator.population import users

    summary, path = generate(events=30_000, faults="unknown_user=0.05")
    known = {u.user_id for u in users(2_000, seed=7)}
    events, _ = read_records(path)
    unknown = sum(e["user_id"] not in known for e in events)
    assert unknown == summary.truth.totals_by_tier()["unknown"] > 0


def test_same_seed_and_arguments_give_identical_bytes(generate: Generate) -> None:
    _, first = generate("a.jsonl.zst", events=40_000, faults=ALL_FAULTS)
    _, second = generate("b.jsonl.zst", events=40_000, faults=ALL_FAULTS)
    _, parallel = generate("c.jsonl.zst", events=40_000, faults=ALL_FAULTS, workers=2)
    _, other = generate("d.jsonl.zst", events=40_000, faults=ALL_FAULTS, seed=8)
    for path in (second, parallel):
        assert path.read_bytes() == first.read_bytes()
        assert transactions_path(path).read_bytes() == transactions_path(first).read_bytes()
        truth = path.with_name(path.name + ".truth.json")
        assert truth.read_bytes() == first.with_name(first.name + ".truth.json").read_bytes()
    assert other.read_bytes() != first.read_bytes()


def test_cli_generates_a_file_with_truth_and_summary(tmp_path: Path) -> None:
    out, truth = tmp_path / "cli.jsonl", tmp_path / "truth.json"
    result = CliRunner().invoke(
        app,
        ["--events", "5000", "--sink", f"file:{out}", "--start", START, "--truth", str(truth)],
    )
    assert result.exit_code == 0, result.output
    assert "generator summary" in result.output
    assert len(read_lines(out)) == 5_000
    document = orjson.loads(truth.read_bytes())
    assert document["totals"]["events"] == 5_000
    assert document["funnel"]["sessions"] == len(document["sessions"])
    funnel = document["funnel"]
    assert all(0 < n <= funnel["sessions"] for n in funnel.values())
    # a purchase follows a checkout, which needs an added product (session causality)
    assert funnel["purchase"] <= funnel["checkout_start"] <= funnel["add_to_cart"]


def test_cli_rejects_a_bad_fault_spec() -> None:
    result = CliRunner().invoke(app, ["--events", "10", "--sink", "stdout", "--faults", "x=1"])
    assert result.exit_code == 2


def test_late_events_arrive_their_delay_behind_event_time(generate: Generate) -> None:
    # One event per second of event time for ~5.5 hours; late events held back by one hour.
    summary, path = generate(events=20_000, duration="20000s", faults="late=0.02:1h")
    late = summary.truth.late
    newest = ""
    lags = []
    for event in read_records(path)[0]:
        stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        newest = max(newest, event["timestamp"])
        lags.append(datetime.fromisoformat(newest.replace("Z", "+00:00")) - stamp)
    # Windows of 16 events per shard at 8 s per shard event: on-time events lag up to ~2 min.
    behind = [lag for lag in lags if lag > timedelta(minutes=5)]
    # none is drawn in the last hour, so none is flushed early at the end: each lags ~1 hour
    assert late > 0 and len(behind) == late
    assert all(lag >= timedelta(minutes=59) for lag in behind)


def test_delayed_duplicates_repeat_their_delay_behind_the_original(generate: Generate) -> None:
    summary, path = generate(events=20_000, duration="20000s", faults="duplicate=0.02:30m")
    repeated = Counter(summary.truth.duplicates)
    assert repeated and max(repeated.values()) == 1
    first: dict[str, datetime] = {}
    newest = datetime.min.replace(tzinfo=UTC)
    lags = {}
    for event in read_records(path)[0]:
        stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        newest = max(newest, stamp)
        if event["event_id"] in first:
            lags[event["event_id"]] = newest - first[event["event_id"]]
        first.setdefault(event["event_id"], stamp)
    # every repeat arrives once event time has passed its original by the delay (none is
    # drawn in the stream's last 30 minutes)
    assert lags.keys() == repeated.keys()
    assert all(timedelta(minutes=29) <= lag <= timedelta(minutes=32) for lag in lags.values())


def test_a_delay_is_only_for_late_and_duplicate() -> None:
    assert FaultSpec.parse("duplicate=0.01:5m").duplicate_delay_us == 300_000_000
    assert FaultSpec.parse("duplicate=0.01").duplicate_delay_us is None
    with pytest.raises(ValueError, match="only late and duplicate"):
        FaultSpec.parse("malformed=0.01:5m")
