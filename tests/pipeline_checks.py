"""Checks of the real-time pipeline's output against the generator's truth, shared by the
speed layer's integration scenarios and the end-to-end demo test."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, Producer

from lambdapipe.lake.offsets import KafkaOffsets
from lambdapipe.serving.auth import api_headers
from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings
from lambdapipe.topics import quiet


def one(store: ServingStore, sql: str, **params: Any) -> Any:
    return next(iter(store.query_rows(sql, params)[0].values()))


def store_counts(store: ServingStore) -> tuple[int, int, int]:
    """Rows of user_events_realtime, transactions_realtime, dead_letters_realtime."""
    return (
        int(one(store, "SELECT count() FROM user_events_realtime")),
        int(one(store, "SELECT count() FROM transactions_realtime")),
        int(one(store, "SELECT count() FROM dead_letters_realtime")),
    )


def produced(settings: Settings, topic: str) -> int:
    """Records in `topic`, the sum of its partitions' offset ranges (0 while it does not exist;
    a CDC topic has partitions of its own)."""
    offsets = KafkaOffsets(settings)
    try:
        return sum(high - low for low, high in offsets.watermarks(topic).values())
    finally:
        offsets.close()


def send_event(
    settings: Settings, topic: str, user_id: str, session_id: str, at: datetime | None = None
) -> str:
    """Produce one valid page_view; returns its event_id."""
    event_id = str(uuid.uuid4())
    moment = at or datetime.now(UTC)
    record = {
        "event_id": event_id,
        "user_id": user_id,
        "session_id": session_id,
        "event_type": "page_view",
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "device_type": "desktop",
        "browser": "chrome",
        "ip_address": "10.0.0.1",
        "page_url": "https://shop.example.com/",
        "referrer": "https://www.google.com/",
    }
    producer = Producer(quiet({"bootstrap.servers": settings.kafka.bootstrap}))
    producer.produce(topic, orjson.dumps(record), key=user_id.encode())
    assert producer.flush(30) == 0
    return event_id


def dlq_headers(settings: Settings, topic: str) -> list[dict[str, str]]:
    """The dead-letter topic's records' headers, unique by source coordinates."""
    consumer = Consumer(
        quiet(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": f"dlq-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
            }
        )
    )
    consumer.subscribe([topic])
    expected = produced(settings, topic)
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    read, deadline = 0, time.monotonic() + 60
    while read < expected and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=1):
            if message.error() is None:
                read += 1
                headers = {k: (v or b"").decode() for k, v in message.headers() or []}
                key = (
                    headers["source_topic"],
                    headers["source_partition"],
                    headers["source_offset"],
                )
                seen[key] = headers
    consumer.close()
    return list(seen.values())


def check_against_truth(
    store: ServingStore,
    truth: dict[str, Any],
    produced_events: int,
    produced_transactions: int,
    dead_letter_headers: list[dict[str, str]],
    extra_sessions: tuple[str, ...] = (),
) -> None:
    """Conservation, dead letters by reason, no duplicates, counts by type and tier, gross
    bookings by tier, funnel. `extra_sessions` are sessions the test sent beside the generator
    (not in truth, not in `produced_events`)."""
    faults = truth["faults"]
    where = {"s": list(extra_sessions)}
    events = int(
        one(
            store,
            "SELECT count() FROM user_events_realtime "
            "WHERE toString(session_id) NOT IN {s:Array(String)}",
            **where,
        )
    )
    transactions, dead = store_counts(store)[1:]
    # Conservation: every record consumed is a row, a dead letter or a dropped duplicate.
    assert events + dead + faults["duplicates_injected"] == produced_events
    assert transactions == produced_transactions == truth["totals"]["transactions"]
    assert events == truth["totals"]["events"]
    by_reason = {
        r["reason"]: int(r["n"])
        for r in store.query_rows(
            "SELECT reason, count() AS n FROM dead_letters_realtime GROUP BY reason"
        )
    }
    assert by_reason == faults["expected_dead_letters"]
    kafka_dlq = Counter(h["reason"] for h in dead_letter_headers)
    assert dict(kafka_dlq) == faults["expected_dead_letters"]
    # Injected duplicates are absent.
    assert one(store, "SELECT count() - uniqExact(event_id) FROM user_events_realtime") == 0
    duplicated = faults["duplicate_event_ids"][:500]
    assert one(
        store,
        "SELECT count() FROM user_events_realtime WHERE toString(event_id) IN {ids:Array(String)}",
        ids=duplicated,
    ) == len(set(duplicated))
    for column, expected in (("event_type", "by_event_type"), ("user_tier", "by_tier")):
        stored = {
            r["key"]: int(r["n"])
            for r in store.query_rows(
                f"SELECT {column} AS key, count() AS n FROM user_events_realtime "
                "WHERE toString(session_id) NOT IN {s:Array(String)} GROUP BY key",
                where,
            )
        }
        assert stored == {k: v for k, v in truth["totals"][expected].items() if v}, column
    # the realtime transactions summed over every status: gross bookings (docs/data-model.md)
    bookings: Counter[str] = Counter()
    for per_tier in truth["gross_bookings_by_day"].values():
        for tier, amount in per_tier.items():
            bookings[tier] += Decimal(amount)
    stored_bookings = {
        r["user_tier"]: Decimal(str(r["gross_bookings"]))
        for r in store.query_rows(
            "SELECT user_tier, sum(total_amount) AS gross_bookings FROM transactions_realtime "
            "GROUP BY user_tier"
        )
    }
    assert stored_bookings == dict(bookings)
    funnel = store.query_rows(
        "SELECT uniqExact(session_id) AS sessions, "
        "uniqExactIf(session_id, event_type = 'page_view') AS page_view, "
        "uniqExactIf(session_id, event_type = 'product_view') AS product_view, "
        "uniqExactIf(session_id, event_type = 'add_to_cart') AS add_to_cart, "
        "uniqExactIf(session_id, event_type = 'checkout_start') AS checkout_start, "
        "uniqExactIf(session_id, event_type = 'purchase') AS purchase "
        "FROM user_events_realtime WHERE toString(session_id) NOT IN {s:Array(String)}",
        where,
    )[0]
    assert {k: int(v) for k, v in funnel.items()} == truth["funnel"]


def check_sessions(store: ServingStore, truth: dict[str, Any]) -> None:
    """Every generated session, closed once, with the truth's start, end, events, money.

    The speed layer's session `revenue` sums purchase amounts of any status: the truth's
    `gross_bookings` (docs/data-model.md, issue 16 aligns the name)."""
    expected_sessions = {s["session_id"]: s for s in truth["sessions"]}
    rows = store.query_rows(
        "SELECT toString(session_id) AS id, session_start, session_end, event_count, revenue, "
        "converted, user_tier FROM user_sessions_realtime"
    )
    stored = {r["id"]: r for r in rows}
    emitted = Counter(r["id"] for r in rows)
    repeated = [r for r in rows if emitted[r["id"]] > 1]
    assert not repeated, ("sessions emitted more than once", repeated[:6])
    assert set(stored) == set(expected_sessions), (
        "missing",
        sorted(set(expected_sessions) - set(stored))[:5],
        "unexpected",
        sorted(set(stored) - set(expected_sessions))[:5],
    )
    mismatched = []
    for session_id, expected in expected_sessions.items():
        got = stored[session_id]
        actual = (
            got["session_start"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            got["session_end"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            int(got["event_count"]),
            Decimal(str(got["revenue"])),
            bool(got["converted"]),
            got["user_tier"],
        )
        wanted = (
            expected["start"],
            expected["end"],
            expected["events"],
            Decimal(expected["gross_bookings"]),
            expected["converted"],
            expected["tier"],
        )
        if actual != wanted:
            mismatched.append((session_id, actual, wanted))
    assert not mismatched, mismatched[:5]


def api(settings: Settings, path: str, **params: str) -> Any:
    """GET /api/<path> with the API token; the answer's JSON (any other status fails)."""
    response = httpx.get(
        f"{settings.serving.endpoint}/api/{path}",
        params=params,
        headers=api_headers(settings.serving),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()
