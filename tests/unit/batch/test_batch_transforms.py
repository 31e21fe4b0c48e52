"""The batch layer's transforms on small hand-made lake rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession

from lambdapipe.batch.day import classified_window, day_outputs, tally
from lambdapipe.batch.history import users_history
from lambdapipe.batch.rows import window_events
from lambdapipe.batch.window import DayWindow
from lambdapipe.speed.records import classify_batch
from tests.unit.batch.lake_rows import (
    DAY,
    TOPICS,
    WINDOW,
    Record,
    at,
    debezium,
    empty_history,
    raw_rows,
)
from tests.unit.contracts.corpus import CASES, NOW
from tests.unit.speed.streams import event, transaction

pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

U1 = "0b6f4c1e-1f0e-4a51-9d43-0d5a8f2f7c11"
U2 = "1c7a5d2f-2a1f-4b62-8e54-1e6b9a3a8d22"
S1 = "6a1e2f4b-90e8-4a77-8d2c-3c7d1b9f0e21"
S2 = "7b2f3a5c-a1f9-4b88-9e3d-4d8e2a0a1f32"
S3 = "8c3a4b6d-b2a0-4c99-8f4e-5e9f3b1b2a43"


def eid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def outputs(spark: SparkSession, records: list[Record], users: DataFrame | None = None):  # type: ignore[no-untyped-def]
    classified = classified_window(raw_rows(spark, records), WINDOW, TOPICS).cache()
    users = users if users is not None else empty_history(spark, "user_id", ("tier",))
    products = empty_history(spark, "product_id", ("name", "category"))
    return classified, day_outputs(classified, WINDOW, TOPICS, users, products)


def test_repeats_far_apart_are_dropped_and_the_first_copy_kept(spark: SparkSession) -> None:
    original = event(at=at("2026-03-02T10:00:00"), event_id=eid(1))
    records = [
        Record("events", original, at("2026-03-02T10:00:01"), partition=3, offset=7),
        Record(
            "events",
            event(at=at("2026-03-02T10:05:00"), event_id=eid(2)),
            at("2026-03-02T10:05:00"),
        ),
        # the same bytes again, two days and a million offsets later
        Record("events", original, at("2026-03-04T09:00:00"), partition=3, offset=1_000_007),
        Record("events", original, at("2026-03-03T09:00:00"), partition=3, offset=500_007),
        Record(
            "transactions", transaction(at=at("2026-03-02T11:00:00")), at("2026-03-02T11:00:00")
        ),
        Record(
            "transactions", transaction(at=at("2026-03-02T11:00:00")), at("2026-03-03T23:00:00")
        ),
    ]
    classified, out = outputs(spark, records)
    counted = tally(classified, TOPICS)
    assert (counted.events, counted.transactions, counted.duplicates) == (2, 1, 3)
    kept = {r["event_id"]: r["source_offset"] for r in out.events.collect()}
    assert kept == {eid(1): 7, eid(2): 0}
    assert [r["source_offset"] for r in out.transactions.collect()] == [0]


def test_each_record_belongs_to_one_day_whenever_it_arrived(spark: SparkSession) -> None:
    records = [
        # late: event time on the day, arrived two days later (within the lookback)
        Record(
            "events",
            event(at=at("2026-03-02T23:00:00"), event_id=eid(1)),
            at("2026-03-04T08:00:00"),
        ),
        # beyond the lookback: not read by this day's run
        Record(
            "events",
            event(at=at("2026-03-02T23:00:00"), event_id=eid(2)),
            at("2026-03-06T08:00:00"),
        ),
        # the next day's event
        Record(
            "events",
            event(at=at("2026-03-03T08:00:00"), event_id=eid(3)),
            at("2026-03-03T08:00:00"),
        ),
        # no event time: the day it arrived
        Record("events", b"{not json", at("2026-03-02T12:00:00")),
        Record("events", b"{not json", at("2026-03-03T12:00:00")),
        # an event time far in the future of its arrival: the day it arrived
        Record(
            "events",
            event(at=at("2999-01-01T00:00:00"), event_id=eid(4)),
            at("2026-03-02T13:00:00"),
        ),
    ]
    classified, out = outputs(spark, records)
    counted = tally(classified, TOPICS)
    assert counted.raw_records == 3
    assert counted.dead_letters == {"future_timestamp": 1, "not_json": 1}
    assert [r["event_id"] for r in out.events.collect()] == [eid(1)]
    assert {r["event_day"] for r in out.dead_letters.collect()} == {DAY}


def test_a_tier_change_at_noon_splits_the_users_events(spark: SparkSession) -> None:
    changes = raw_rows(
        spark,
        [
            Record(
                "shop.public.users",
                debezium("r", U1, "silver", at("2026-03-02T08:00:00"), 10),
                at("2026-03-02T08:00:00"),
            ),
            Record(
                "shop.public.users",
                debezium("u", U1, "gold", at("2026-03-02T12:00:00"), 20, "silver"),
                at("2026-03-02T12:00:00"),
                offset=1,
            ),
            # an exact replay after a Connect crash
            Record(
                "shop.public.users",
                debezium("u", U1, "gold", at("2026-03-02T12:00:00"), 20, "silver"),
                at("2026-03-02T12:01:00"),
                offset=2,
            ),
            # a change of another column: no new version
            Record(
                "shop.public.users",
                debezium("u", U1, "gold", at("2026-03-02T14:00:00"), 30, "gold"),
                at("2026-03-02T14:00:00"),
                offset=3,
            ),
        ],
        kind="debezium_ts_ms",
    )
    users = users_history(changes).cache()
    versions = [
        (r["tier"], r["valid_from"], r["valid_to"], r["is_current"])
        for r in users.orderBy("valid_from").collect()
    ]
    assert [(t, c) for t, _, _, c in versions] == [("silver", False), ("gold", True)]
    assert versions[0][2] == versions[1][1] == at("2026-03-02T12:00:00").replace(tzinfo=None)
    records = [
        # before the snapshot itself: the first version holds from the beginning
        Record(
            "events",
            event(at=at("2026-03-02T07:00:00"), event_id=eid(1), user_id=U1),
            at("2026-03-02T07:00:00"),
        ),
        Record(
            "events",
            event(at=at("2026-03-02T11:59:59.999"), event_id=eid(2), user_id=U1),
            at("2026-03-02T12:00:00"),
        ),
        Record(
            "events",
            event(at=at("2026-03-02T12:00:00"), event_id=eid(3), user_id=U1),
            at("2026-03-02T12:00:00"),
        ),
        Record(
            "events",
            event(at=at("2026-03-02T15:00:00"), event_id=eid(4), user_id=U1),
            at("2026-03-02T15:00:00"),
        ),
        Record(
            "events",
            event(at=at("2026-03-02T15:00:00"), event_id=eid(5), user_id=U2),
            at("2026-03-02T15:00:00"),
        ),
        Record(
            "transactions",
            transaction(at=at("2026-03-02T11:00:00"), user_id=U1),
            at("2026-03-02T11:00:00"),
        ),
    ]
    _, out = outputs(spark, records, users)
    tiers = {r["event_id"]: r["user_tier"] for r in out.events.collect()}
    assert tiers == {
        eid(1): "silver",
        eid(2): "silver",
        eid(3): "gold",
        eid(4): "gold",
        eid(5): "unknown",
    }
    assert [r["user_tier"] for r in out.transactions.collect()] == ["silver"]


def test_sessions_belong_to_the_day_they_start(spark: SparkSession) -> None:
    def ev(n: int, when: str, session: str, kind: str = "page_view", **extra: object) -> Record:
        moment = at(when)
        body = event(kind, at=moment, event_id=eid(n), session_id=session, **extra)
        return Record("events", body, moment + timedelta(seconds=1))

    purchase = {
        "product_id": "2f3e4d5c-6b7a-4988-8776-655443322110",
        "quantity": 1,
        "amount": "9.99",
        "transaction_id": "7d2c1b0a-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
    }
    records = [
        # open at midnight, started the day before: not this day's
        ev(1, "2026-03-01T23:45:00", S1),
        ev(2, "2026-03-02T00:05:00", S1),
        # within the day
        ev(3, "2026-03-02T10:00:00", S2),
        ev(4, "2026-03-02T10:20:00", S2, "purchase", **purchase),
        # two sessions of one session_id, 31 minutes apart
        ev(5, "2026-03-02T11:00:00", S2),
        # starts on the day, crosses midnight
        ev(6, "2026-03-02T23:50:00", S3),
        ev(7, "2026-03-03T00:10:00", S3),
        ev(8, "2026-03-03T00:35:00", S3),
    ]
    classified, out = outputs(spark, records)
    sessions = {
        (r["session_id"], r["session_start"].isoformat()): (
            r["event_count"],
            r["session_end"].isoformat(),
            r["revenue"],
            r["converted"],
            r["user_tier"],
        )
        for r in out.sessions.collect()
    }
    assert sessions == {
        (S2, "2026-03-02T10:00:00"): (2, "2026-03-02T10:20:00", Decimal("9.99"), True, "unknown"),
        (S2, "2026-03-02T11:00:00"): (1, "2026-03-02T11:00:00", Decimal("0.00"), False, "unknown"),
        (S3, "2026-03-02T23:50:00"): (3, "2026-03-03T00:35:00", Decimal("0.00"), False, "unknown"),
    }
    # the day's events are those of its event times, whichever session they belong to
    assert sorted(r["event_id"] for r in out.events.collect()) == [eid(n) for n in range(2, 7)]
    assert tally(classified, TOPICS).events == 5
    assert not any(r["cut"] for r in out.sessions.collect())
    # each event carries the start of its batch session, the previous day's included
    starts = {r["event_id"]: r["session_start"].isoformat() for r in out.events.collect()}
    assert starts[eid(2)] == "2026-03-01T23:45:00"
    assert starts[eid(5)] == "2026-03-02T11:00:00" and starts[eid(4)] == "2026-03-02T10:00:00"
    keys = {r["session_key"] for r in out.events.where(f"event_id = '{eid(6)}'").collect()}
    assert keys == {f"{S3}/{int(at('2026-03-02T23:50:00').timestamp() * 1000)}"}


def test_a_session_still_open_at_the_horizon_is_cut_and_counted(spark: SparkSession) -> None:
    window = DayWindow(DAY, horizon=timedelta(hours=1))
    records = [
        Record(
            "events",
            event(at=at(f"2026-03-02T23:{m:02d}:00"), event_id=eid(m)),
            at("2026-03-02T23:59:00"),
        )
        for m in range(40, 60, 10)
    ] + [
        Record(
            "events",
            event(at=at(f"2026-03-03T00:{m:02d}:00"), event_id=eid(100 + m)),
            at("2026-03-03T01:00:00"),
        )
        for m in range(0, 60, 10)
    ]
    classified = classified_window(raw_rows(spark, records), window, TOPICS)
    users = empty_history(spark, "user_id", ("tier",))
    products = empty_history(spark, "product_id", ("name", "category"))
    out = day_outputs(classified, window, TOPICS, users, products)
    [session] = out.sessions.collect()
    assert session["cut"] and session["event_count"] == 8


def test_validation_reasons_equal_the_speed_layers_for_the_invalid_corpus(
    spark: SparkSession,
) -> None:
    cases = [c for c in CASES if c.limits.max_bytes == 64 * 1024]
    records = [
        Record("transactions" if c.kind == "transaction" else "events", c.raw, NOW, offset=i)
        for i, c in enumerate(cases)
    ]
    classified = classified_window(raw_rows(spark, records), DayWindow(NOW.date()), TOPICS)
    batch = {r["offset"]: (r["reason"], r["detail"]) for r in classified.collect() if r["in_day"]}
    speed_rows = pa.record_batch(
        {
            "key": pa.nulls(len(cases), pa.binary()),
            "value": pa.array([c.raw for c in cases], pa.binary()),
            "topic": pa.array([r.topic for r in records]),
            "partition": pa.array([0] * len(cases), pa.int32()),
            "offset": pa.array(range(len(cases)), pa.int64()),
            "batch_time": pa.array([NOW] * len(cases), pa.timestamp("us", tz="UTC")),
        }
    )
    verdicts = classify_batch(
        speed_rows,
        events_topic="events",
        transactions_topic="transactions",
    )
    speed = dict(
        zip(
            verdicts.column("offset").to_pylist(),
            zip(
                verdicts.column("reason").to_pylist(),
                verdicts.column("detail").to_pylist(),
                strict=True,
            ),
            strict=True,
        )
    )
    # records without an event time belong to the day they arrived: every case is on NOW's day
    assert set(batch) == set(speed) == set(range(len(cases)))
    assert batch == speed
    assert {reason for reason, _ in batch.values()} == {str(c.reason) for c in cases}


def test_conservation_raw_equals_rows_plus_dead_letters_plus_repeats(spark: SparkSession) -> None:
    day = [
        Record(
            "events",
            event(at=at("2026-03-02T09:00:00"), event_id=eid(n)),
            at("2026-03-02T09:00:00"),
            partition=n % 3,
        )
        for n in range(30)
    ]
    repeats = [
        Record("events", r.value, at("2026-03-03T09:00:00"), partition=r.partition) for r in day[:7]
    ]
    bad = [
        Record("events", b"[]", at("2026-03-02T10:00:00")),
        Record("transactions", b"{}", at("2026-03-02T10:00:00")),
    ]
    trx = [
        Record("transactions", transaction(at=at("2026-03-02T09:30:00")), at("2026-03-02T09:30:00"))
    ]
    classified, out = outputs(spark, day + repeats + bad + trx)
    counted = tally(classified, TOPICS)
    rows = out.events.count() + out.transactions.count() + out.dead_letters.count()
    assert counted.raw_records == 40
    assert rows + counted.duplicates == counted.raw_records
    assert (counted.duplicates, counted.dead_letters) == (7, {"missing_field": 1, "not_object": 1})
    assert window_events(classified, TOPICS.events).count() == 30


def test_the_catalogue_as_of_a_moment_and_the_raw_selection(spark: SparkSession) -> None:
    from lambdapipe.batch.history import catalogue_as_of
    from lambdapipe.batch.load import raw_columns
    from lambdapipe.warehouse.raw import arrow_schema

    pid = "2f3e4d5c-6b7a-4988-8776-655443322110"

    def product(op: str, price: str, when: str, lsn: int) -> dict[str, object]:
        image = {
            "product_id": pid, "name": "Lamp", "category": "home", "subcategory": "light",
            "brand": "Acme", "price": price, "cost": "5.00", "is_active": True,
            "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": f"{when}.000000Z",
        }  # fmt: skip
        millis = int(at(when).timestamp() * 1000)
        return {"op": op, "before": None, "after": image, "source": {"ts_ms": millis, "lsn": lsn}}

    changes = raw_rows(
        spark,
        [
            Record("p", product("r", "10.00", "2026-03-01T08:00:00", 1), at("2026-03-01T08:00:00")),
            Record("p", product("u", "12.00", "2026-03-02T12:00:00", 2), at("2026-03-02T12:00:00")),
            Record("p", product("u", "15.00", "2026-03-03T12:00:00", 3), at("2026-03-03T12:00:00")),
        ],
        kind="debezium_ts_ms",
    )
    prices = {
        when: [r["price"] for r in catalogue_as_of(changes, at(when)).collect()]
        for when in ("2026-02-01T00:00:00", "2026-03-03T00:00:00", "2026-03-04T00:00:00")
    }
    assert prices == {
        "2026-02-01T00:00:00": [Decimal("10.00")],  # before the first image: the first image
        "2026-03-03T00:00:00": [Decimal("12.00")],
        "2026-03-04T00:00:00": [Decimal("15.00")],
    }
    catalogue = catalogue_as_of(changes, at("2026-03-04T00:00:00"))
    assert set(catalogue.columns) == set(arrow_schema("products").names) - {"file_name"}
    _, out = outputs(
        spark, [Record("events", event(at=at("2026-03-02T09:00:00")), at("2026-03-02T09:00:00"))]
    )
    # every RAW column but the data file's name, which the load adds per file
    assert [*raw_columns(out.events.columns, "user_events"), "file_name"] == arrow_schema(
        "user_events"
    ).names
