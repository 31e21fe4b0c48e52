"""The watched users: the truth records each of their events, exactly as it was sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson

from lambdapipe.generator.population import users, watched
from lambdapipe.generator.run import Summary
from tests.unit.generator.outputs import read_records

Generate = Callable[..., tuple[Summary, Path]]


def test_the_watched_share_picks_about_that_share_of_users() -> None:
    ids = [u.user_id for u in users(20_000, 7)]
    picked = sum(watched(u, 0.05) for u in ids)
    assert 800 < picked < 1_200
    assert not any(watched(u, 0.0) for u in ids) and all(watched(u, 1.0) for u in ids)


def test_the_truth_records_every_event_of_the_watched_users_as_sent(generate: Generate) -> None:
    # duplicates and late deliveries change what is sent, never the events the truth records
    _, path = generate(watch_share=0.05, faults="duplicate=0.01,late=0.01:1h,unknown_user=0.01")
    events, transactions = read_records(path)
    doc = orjson.loads(path.with_name(path.name + ".truth.json").read_bytes())
    money = {t["transaction_id"]: (t["total_amount"], t["status"]) for t in transactions}
    population = {u.user_id for u in users(2_000, 7)}  # the fixture's; unknown users never count
    sent: dict[str, list[list[object]]] = {}
    seen: set[str] = set()
    for e in events:
        if e["user_id"] not in population or not watched(e["user_id"], 0.05):
            continue
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        ms = int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000)
        row: list[object] = [ms, e["event_type"]]
        if e["event_type"] == "purchase":
            row += money[e["transaction_id"]]
        sent.setdefault(e["session_id"], []).append(row)
    for rows in sent.values():
        rows.sort(key=lambda r: r[0])  # late events arrive after their session's later ones
    recorded = {s["session_id"]: s["events"] for s in doc["watched"]["sessions"]}
    assert doc["watched"]["share"] == 0.05
    assert recorded == sent and len(sent) > 50
    tiers = {s["session_id"]: s["tier"] for s in doc["sessions"]}
    assert all(tiers[s["session_id"]] == s["tier"] for s in doc["watched"]["sessions"])


def test_without_a_watched_share_the_truth_records_no_trail(generate: Generate) -> None:
    _, path = generate(events=5_000)
    doc = orjson.loads(path.with_name(path.name + ".truth.json").read_bytes())
    assert doc["watched"] == {"share": 0.0, "sessions": []}
