"""Every speed-layer transform on small batch DataFrames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lambdapipe.contracts import Reason
from lambdapipe.contracts.clickhouse import enriched_columns
from lambdapipe.speed.dead_letters import dead_letter_rows
from lambdapipe.speed.deduplicate import deduplicate, deduplicate_events, watermark_delay
from lambdapipe.speed.enrich import enrich_with_tier
from lambdapipe.speed.handoff import SESSION_COLUMNS, decode, encode, handed_off_events
from lambdapipe.speed.records import classify_records
from lambdapipe.speed.serving_rows import event_rows, transaction_rows
from lambdapipe.speed.sessionize import session_rows, sessionize
from tests.unit.speed.streams import SESSION, USER, event, kafka_rows, run_stream, transaction

# PySpark's py4j sockets are closed by the JVM side; Python reports them as unclosed.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

EVENTS, TRANSACTIONS, ACCEPTED = "events", "transactions", "events.accepted"
LATENESS = timedelta(minutes=10)
SKEW = timedelta(minutes=5)


def classify(spark: SparkSession, records: list[tuple[str, bytes | dict[str, object]]]):  # type: ignore[no-untyped-def]
    return classify_records(
        kafka_rows(spark, records),
        events_topic=EVENTS,
        transactions_topic=TRANSACTIONS,
    )


def test_classify_gives_each_record_one_verdict(spark: SparkSession) -> None:
    now = datetime.now(UTC)
    bad_uuid = event(event_id="2c9d3f0a-2b4e-4c6d-8e0f-1a2b3c4d5e6f", user_id=USER[:-1] + "g")
    rows = classify(
        spark,
        [
            (EVENTS, event()),
            (EVENTS, b'{"event_id": '),
            (EVENTS, bad_uuid),
            (EVENTS, event(at=now - timedelta(days=3), event_id=USER)),  # old, not late
            (TRANSACTIONS, transaction()),
            (TRANSACTIONS, transaction(total_amount="99.99")),
            (EVENTS, event(at=now + timedelta(hours=1))),
        ],
    ).collect()
    assert [r["reason"] for r in rows] == [
        None,
        Reason.NOT_JSON,
        Reason.BAD_UUID,
        None,
        None,
        Reason.BUSINESS_RULE,
        Reason.FUTURE_TIMESTAMP,
    ]
    assert [r["accepted"] for r in rows] == [True, False, False, True, True, False, False]
    assert rows[0]["dedup_key"] == "e:1c9d3f0a-2b4e-4c6d-8e0f-1a2b3c4d5e6f"
    assert rows[4]["dedup_key"] == "t:7d2c1b0a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
    assert rows[1]["dedup_key"] == "events/0/1"
    assert rows[3]["value"] is not None  # accepted, yet the bytes travel: it may be judged late
    assert rows[0]["event_time"] is not None and rows[0]["batch_time"] is not None


def handed_off(
    spark: SparkSession, records: list[tuple[str, bytes | dict[str, object]]]
) -> list[tuple[str, bytes | dict[str, object]]]:
    """What the records query publishes for `records`: (accepted-events topic, IPC chunk)."""
    rows = event_rows(classify(spark, records).toArrow(), EVENTS)
    return [(ACCEPTED, message) for message in encode(rows)]


def test_dead_letters_keep_the_original_bytes_and_source(spark: SparkSession) -> None:
    raw = b'{"event_id": '
    bad_type = orjson.dumps(event("search"))  # a search without its query
    classified = classify(
        spark, [(EVENTS, event()), (EVENTS, raw), (TRANSACTIONS, b"[1]"), (EVENTS, bad_type)]
    ).toArrow()
    dead = dead_letter_rows(classified).to_pylist()
    assert [(d["source_topic"], d["source_offset"], d["reason"]) for d in dead] == [
        (EVENTS, 1, Reason.NOT_JSON),
        (TRANSACTIONS, 2, Reason.NOT_OBJECT),
        (EVENTS, 3, Reason.MISSING_FIELD),
    ]
    assert dead[0]["raw"] == raw and dead[0]["key"] == USER.encode()
    assert dead[0]["source_partition"] == 0 and dead[0]["dead_lettered_at"] is not None
    assert [d["event_type"] for d in dead] == [None, None, "search"]
    assert dead[0]["detail"] == "$" and dead[2]["detail"] == "$.search_query"
    assert classified.column("value")[0].as_py() is not None  # accepted: kept, may turn late


def _classify_stream(frame: DataFrame) -> DataFrame:
    return classify_records(frame, events_topic=EVENTS, transactions_topic=TRANSACTIONS)


def test_deduplicate_drops_repeats_but_never_dead_letters(
    spark: SparkSession, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    first: list[tuple[str, bytes | dict[str, object]]] = [
        (EVENTS, event()),
        (EVENTS, event()),
        (EVENTS, b"nope"),
        (EVENTS, b"nope"),
        (TRANSACTIONS, transaction()),
    ]
    second: list[tuple[str, bytes | dict[str, object]]] = [
        (EVENTS, event()),  # a repeat from the previous micro-batch
        (TRANSACTIONS, transaction()),
        (EVENTS, event(at=now - timedelta(hours=3), event_id=SESSION)),  # old: kept
        (EVENTS, event(at=now - timedelta(minutes=9), event_id=USER)),  # on time
    ]
    out = run_stream(
        spark,
        tmp_path,
        [first, second],
        lambda frame: deduplicate(_classify_stream(frame), LATENESS, SKEW),
    )
    kept_first, kept_second = out[0], out[1]
    assert sorted(r["offset"] for r in kept_first if not r["accepted"]) == [2, 3]
    assert len([r for r in kept_first if r["accepted"]]) == 2
    assert sorted((r["offset"], r["accepted"]) for r in kept_second) == [(7, True), (8, True)]
    assert watermark_delay(LATENESS, SKEW) == timedelta(minutes=15)


def test_deduplicate_events_by_event_id(spark: SparkSession, tmp_path: Path) -> None:
    once = handed_off(spark, [(EVENTS, event())])
    out = run_stream(
        spark,
        tmp_path,
        [once + once, once],  # a replayed micro-batch hands its events off again
        lambda frame: deduplicate_events(handed_off_events(frame), LATENESS, SKEW),
    )
    assert [len(rows) for rows in out] == [1, 0]


def test_handoff_carries_the_session_columns(spark: SparkSession) -> None:
    records = [(EVENTS, event(event_id=f"{i:08d}-1111-4222-8333-444455556666")) for i in range(5)]
    rows = event_rows(classify(spark, records).toArrow(), EVENTS)
    messages = encode(rows)
    batch = pa.RecordBatch.from_pydict({"value": messages})
    back = pa.Table.from_batches(list(decode([batch])))
    assert back.to_pylist() == rows.select(list(SESSION_COLUMNS)).to_pylist()
    assert encode(rows.slice(0, 0)) == []
    frame = handed_off_events(kafka_rows(spark, [(ACCEPTED, m) for m in messages]))
    assert frame.count() == 5 and "event_time" in frame.columns


def test_event_rows_have_the_store_columns_and_types(spark: SparkSession) -> None:
    records = classify(
        spark,
        [
            (
                EVENTS,
                event(
                    "purchase",
                    transaction_id="c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
                    product_id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                    quantity=2,
                    amount="117.58",
                ),
            )
        ],
    )
    rows = event_rows(records.toArrow(), EVENTS)
    expected = [name for name, _ in enriched_columns("user_event")][:-1]
    assert rows.column_names == expected
    (row,) = rows.to_pylist()
    assert row["amount"] == Decimal("117.58") and row["quantity"] == 2
    assert row["timestamp"] == records.toArrow().column("event_time")[0].as_py()
    assert row["page_url"] is None and row["product_id"] == "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    assert rows.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    txs = transaction_rows(classify(spark, [(TRANSACTIONS, transaction())]).toArrow(), TRANSACTIONS)
    (tx,) = txs.to_pylist()
    assert tx["total_amount"] == Decimal("21.60") and tx["status"] == "completed"
    none = event_rows(records.toArrow(), TRANSACTIONS)  # no accepted record on that topic
    assert none.num_rows == 0 and none.column_names == expected


def test_enrich_with_tier_defaults_to_unknown() -> None:
    other = "3a4b5c6d-7e8f-4a0b-8c1d-2e3f4a5b6c7d"
    rows = pa.table({"user_id": [USER, other, USER], "n": [1, 2, 3]})
    tiers = pa.table({"user_id": [USER], "tier": ["gold"]})
    enriched = enrich_with_tier(rows, tiers)
    assert enriched.column("user_tier").to_pylist() == ["gold", "unknown", "gold"]
    assert enriched.column_names == ["user_id", "n", "user_tier"]
    nobody = pa.table({"user_id": pa.array([], pa.string()), "tier": pa.array([], pa.string())})
    assert enrich_with_tier(rows, nobody).column("user_tier").to_pylist() == ["unknown"] * 3
    assert enrich_with_tier(rows.slice(0, 0), tiers).num_rows == 0


def test_sessionize_cuts_on_the_inactivity_gap(spark: SparkSession) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    journey = [
        ("page_view", 0, {}),
        ("add_to_cart", 60, {"product_id": SESSION, "quantity": 2}),
        (
            "purchase",
            120,
            {"transaction_id": USER, "product_id": SESSION, "quantity": 2, "amount": "10.50"},
        ),
        ("page_view", 120 + 31 * 60, {}),  # after 31 idle minutes: a new session window
    ]
    records: list[tuple[str, bytes | dict[str, object]]] = [
        (
            EVENTS,
            event(
                kind,
                at=start + timedelta(seconds=s),
                event_id=f"{i:08d}-1111-4222-8333-444455556666",
                **extra,
            ),
        )
        for i, (kind, s, extra) in enumerate(journey)
    ]
    classified = classify_records(
        kafka_rows(spark, records),
        events_topic=EVENTS,
        transactions_topic=TRANSACTIONS,
    ).toArrow()
    chunks = [(ACCEPTED, m) for m in encode(event_rows(classified, EVENTS))]
    sessions = sessionize(handed_off_events(kafka_rows(spark, chunks)), timedelta(minutes=30))
    rows = sorted(session_rows(sessions).collect(), key=lambda r: r["session_start"])
    assert [r["event_count"] for r in rows] == [3, 1]
    first = rows[0]
    assert first["session_id"] == SESSION and first["user_id"] == USER
    assert first["duration_s"] == 120 and first["purchases"] == 1 and first["add_to_carts"] == 1
    assert first["revenue"] == Decimal("10.50") and first["items"] == 2 and first["converted"]
    assert rows[1]["revenue"] == Decimal("0.00") and not rows[1]["converted"]
    assert first["device_type"] == "mobile" and first["browser"] == "firefox"


def test_classify_survives_garbage_on_an_unexpected_topic(spark: SparkSession) -> None:
    (row,) = classify(spark, [("other", orjson.dumps(event()))]).collect()
    assert row["reason"] == "unknown_topic" and not row["accepted"]
    assert F is not None


def test_a_bad_timestamp_is_a_dead_letter_not_a_failure(spark: SparkSession) -> None:
    bad = event(event_id=SESSION)
    bad["timestamp"] = bad["timestamp"].replace("T", " ")
    (row,) = classify(spark, [(EVENTS, bad)]).collect()
    assert row["reason"] == Reason.BAD_TIMESTAMP and row["event_time"] is None
