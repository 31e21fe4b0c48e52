"""The truth re-tiered by a churn log: each watched event, transaction and session takes the tier
its user had at its time, with the batch layer's boundary (a move counts from its commit on)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from lambdapipe.errors import Problem
from lambdapipe.reconcile.truth import read_churn_log, retiered, truth_metrics

DAY = date(2026, 3, 2)
USER = "01000000-0000-4000-8000-000000000001"  # watched at 1 %: 0x01000000 < 2^32 / 100
MOVE = datetime(2026, 3, 2, 10, 0, 0, 250_000, UTC)
T = int(MOVE.timestamp() * 1000)


def truth() -> dict[str, Any]:
    """Two sessions of USER, drawn silver: the first spans the move, the second starts on it."""
    d = DAY.isoformat()
    first = [[T - 1, "page_view"], [T, "page_view"], [T + 5, "purchase", "10.00", "completed"]]
    second = [[T, "search"], [T + 7, "purchase", "4.00", "refunded"]]
    return {
        "events_by_day": {
            d: {"page_view": {"silver": 2, "bronze": 3}, "purchase": {"silver": 2},
                "search": {"silver": 1}},
        },
        "totals": {"events": 8, "by_tier": {"silver": 5, "bronze": 3}},
        "transactions_by_day": {d: {"silver": 2}},
        "gross_bookings_by_day": {d: {"silver": "14.00"}},
        "revenue_by_day": {d: {"silver": "10.00"}},
        "refunds_by_day": {d: {"silver": "4.00"}},
        "funnel": {"sessions": 3},
        "sessions": [
            {"session_id": "s1", "user_id": USER, "tier": "silver", "start": f"{d}T09:59:59Z"},
            {"session_id": "s2", "user_id": USER, "tier": "silver", "start": f"{d}T10:00:00Z"},
            {"session_id": "s3", "user_id": "other", "tier": "bronze", "start": f"{d}T08:00:00Z"},
        ],
        "watched": {
            "share": 0.01,
            "sessions": [
                {"session_id": "s1", "user_id": USER, "tier": "silver", "events": first},
                {"session_id": "s2", "user_id": USER, "tier": "silver", "events": second},
            ],
        },
    }  # fmt: skip


def churn_log(tmp_path: Path, *lines: dict[str, str]) -> Path:
    path = tmp_path / "churn.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def move(user_id: str, old: str, new: str, at: str) -> dict[str, str]:
    """A churn log's line for a tier move committed on DAY at `at` (HH:MM:SS.mmm)."""
    return {"user_id": user_id, "from": old, "to": new, "committed_at": f"{DAY}T{at}Z"}


def metrics(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    rows = truth_metrics(doc, DAY).values.to_pylist()
    return {(r["metric"], r["key"]): str(r["value"]) for r in rows}


def test_a_move_counts_from_its_commit_instant_for_events_transactions_and_sessions(
    tmp_path: Path,
) -> None:
    log = churn_log(
        tmp_path,
        {"user_id": USER, "tier": "silver"},
        move(USER, "silver", "gold", "10:00:00.250"),
    )
    doc = truth()
    out = retiered(doc, read_churn_log(log))
    d = DAY.isoformat()
    # the page view 1 ms before the commit stays silver, the one at the commit instant is gold
    assert out["events_by_day"][d] == {
        "page_view": {"silver": 1, "gold": 1, "bronze": 3},
        "purchase": {"gold": 2},
        "search": {"gold": 1},
    }
    assert out["totals"]["by_tier"] == {"silver": 1, "gold": 4, "bronze": 3}
    assert out["transactions_by_day"][d] == {"gold": 2}
    assert out["gross_bookings_by_day"][d] == {"gold": "14.00"}
    assert (out["revenue_by_day"][d], out["refunds_by_day"][d]) == (
        {"gold": "10.00"},
        {"gold": "4.00"},
    )
    # a session takes its first event's tier: s1 began before the move, s2 at its instant
    assert [s["tier"] for s in out["sessions"]] == ["silver", "gold", "bronze"]
    got = metrics(out)
    assert got[("sessions", "silver")] == got[("sessions", "gold")] == got[("sessions", "bronze")]
    assert ("transactions_by_tier", "silver") not in got
    assert doc == truth()  # the document read is left as it was


def test_a_user_moved_by_an_earlier_run_starts_from_the_logged_tier(tmp_path: Path) -> None:
    log = churn_log(tmp_path, {"user_id": USER, "tier": "platinum"})
    out = retiered(truth(), read_churn_log(log))
    assert out["transactions_by_day"][DAY.isoformat()] == {"platinum": 2}
    assert [s["tier"] for s in out["sessions"]] == ["platinum", "platinum", "bronze"]


def test_two_moves_and_a_log_without_its_first_line(tmp_path: Path) -> None:
    log = churn_log(
        tmp_path,
        move(USER, "silver", "gold", "10:00:00.000"),
        move(USER, "gold", "silver", "10:00:00.255"),
    )
    out = retiered(truth(), read_churn_log(log))
    d = DAY.isoformat()
    # T - 1 and T are gold (after the first move), T + 5 (the second's instant) silver again
    assert out["events_by_day"][d]["page_view"] == {"gold": 2, "bronze": 3}
    assert out["events_by_day"][d]["purchase"] == {"silver": 2}
    assert [s["tier"] for s in out["sessions"]] == ["gold", "gold", "bronze"]


def test_an_empty_log_changes_nothing_and_a_move_outside_the_watched_share_is_refused(
    tmp_path: Path,
) -> None:
    assert retiered(truth(), {}) == truth()
    stranger = "ff000000-0000-4000-8000-000000000001"
    log = churn_log(
        tmp_path,
        move(stranger, "gold", "silver", "10:00:00"),
    )
    with pytest.raises(Problem, match="whose events the truth did not record"):
        retiered(truth(), read_churn_log(log))


def test_a_broken_or_missing_churn_log_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(Problem, match="no churn log"):
        read_churn_log(tmp_path / "absent.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": "u", "from": "gold"}\n')
    with pytest.raises(Problem, match="line 1 of the churn log"):
        read_churn_log(bad)
