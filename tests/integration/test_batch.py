"""The batch layer on the real stack: generator -> Kafka -> lake archiver -> `batch run` ->
curated Iceberg tables -> warehouse RAW -> dbt marts, each compared with the generator's truth
exactly (the marts: counts by day, type and tier, money by tier, every session, the funnel, each
user's lifetime, products, dead letters by reason).

The traffic is yesterday's (`--start` at its midnight, 24 h of event time, sent now): faults the
speed layer cannot fully handle (late by 2 h, duplicates; and repeats the test re-sends far
apart), tier churn in PostgreSQL (after the traffic's event times: the tiers of the day stay
the ones the truth knows), and a tier changed at a known moment today around two hand-made
events.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow as pa
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from lambdapipe.contracts import validate_event
from lambdapipe.contracts.reasons import Reason
from lambdapipe.generator.population import products
from lambdapipe.ingest import cdc
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.serving.ddl import FUNNEL_STEP_COUNTS, FUNNEL_STEPS
from lambdapipe.settings import Settings, as_environment
from lambdapipe.topics import quiet
from tests.pipeline_checks import api, produced, send_event
from tests.stacks import PORT_OFFSET, STACK_NAME, running_stack, stack_settings
from tests.warehouse_sample import COUNTS

# The first test's time holds the module's set-up (stack, traffic, archive, batch run), which
# took more than the default 600 s at load average 20 (the whole module: 18 min).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

USERS, PRODUCTS, SEED = 200, 60, 23
EVENTS = 20_000
FAULTS = (
    "duplicate=0.02,late=0.01:2h,out_of_order=0.01,malformed=0.004,schema=0.01,unknown_user=0.01"
)
FAR_REPEATS = 25
# the money numbers of docs/data-model.md, as the truth and the marts name them
MONEY = ("gross_bookings", "revenue", "refunds")
MONEY_OF_STATUS = {"completed": "revenue", "refunded": "refunds"}  # gross bookings: any status
MARTS = (
    "daily_metrics",
    "tier_behaviour",
    "user_sessions",
    "conversion_funnel",
    "customer_lifetime_value",
    "product_performance",
)
REJECTION_REASONS = tuple(Reason)


def cli(settings: Settings, folder: Path, name: str, *args: str, timeout: float = 900) -> str:
    env = {
        **os.environ,
        **as_environment(settings),
        "LAMBDAPIPE_LAKE__DRIVER_MEMORY": "1g",
        "LAMBDAPIPE_LAKE__METRICS_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    (folder / f"{name}.log").write_bytes(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")[-4000:]
    return done.stdout.decode()


def json_of(out: str) -> dict[str, Any]:
    """The JSON document `--json` printed (after whatever else reached stdout)."""
    start = out.index("{") if out.startswith("{") else out.index("\n{") + 1
    parsed: dict[str, Any] = json.loads(out[start:])
    return parsed


def cdc_records(settings: Settings) -> int:
    """Records in the users CDC topic (0 until Debezium creates it and its leaders settle)."""
    try:
        return produced(settings, cdc.topic(settings, "users"))
    except KafkaException:  # a new topic's partition without a leader yet
        return 0


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out: {what}")


def resend_far_apart(settings: Settings, n: int, day: date) -> list[str]:
    """Re-send the exact bytes of `n` valid events of `day` read back from Kafka: repeats
    thousands of records after their original, beyond any streaming watermark."""
    consumer = Consumer(
        quiet(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": f"batch-test-{uuid.uuid4()}",
                "enable.auto.commit": False,
            }
        )
    )
    topic = settings.kafka.events_topic
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.kafka.partitions)])
    chosen: dict[str, tuple[bytes | None, bytes]] = {}
    rng = random.Random(SEED)
    deadline = time.monotonic() + 60
    while len(chosen) < n and time.monotonic() < deadline:
        for m in consumer.consume(2000, timeout=1):
            value = m.value()
            if m.error() is not None or value is None or rng.random() > 0.01:
                continue
            result = validate_event(value, datetime.now(UTC))
            event = result.event if result.ok else None
            if event and event["timestamp"].startswith(day.isoformat()) and len(chosen) < n:
                chosen.setdefault(event["event_id"], (m.key(), value))
    consumer.close()
    assert len(chosen) == n
    producer = Producer(quiet({"bootstrap.servers": settings.kafka.bootstrap}))
    for key, value in chosen.values():
        producer.produce(topic, value, key=key)
    assert producer.flush(30) == 0
    return list(chosen)


@dataclass
class TierChange:
    user_id: str
    old: str
    new: str
    changed_at: datetime
    session_id: str  # of the two events, one page_view each
    before: str  # event_id
    after: str
    sent: tuple[datetime, datetime]  # the two events' times


def change_tier_between_two_events(settings: Settings) -> TierChange:
    pg = settings.postgres
    dsn = (
        f"host={pg.host} port={pg.port} dbname={pg.app_database} user={pg.app_user} "
        f"password={pg.app_password.get_secret_value()}"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        user_id, old = conn.execute(
            "SELECT user_id::text, tier FROM users ORDER BY user_id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        new = "platinum" if old != "platinum" else "bronze"
        session = str(uuid.uuid4())
        before_at = datetime.now(UTC)
        before = send_event(settings, settings.kafka.events_topic, user_id, session, before_at)
        time.sleep(1.5)
        (changed_at,) = conn.execute(
            "UPDATE users SET tier = %s WHERE user_id = %s RETURNING updated_at", (new, user_id)
        ).fetchone()  # type: ignore[misc]
        time.sleep(1.5)
        after_at = datetime.now(UTC)
        after = send_event(settings, settings.kafka.events_topic, user_id, session, after_at)
    return TierChange(user_id, old, new, changed_at, session, before, after, (before_at, after_at))


@dataclass
class Run:
    settings: Settings
    folder: Path
    day: date
    today: date
    truth: dict[str, Any]
    repeats: list[str]
    tier: TierChange
    summary: dict[str, Any]


def curated(settings: Settings, table: str) -> pa.Table:
    with Resources(settings).lake_catalog() as catalog:
        return catalog.load_table(f"{settings.lake.curated_namespace}.{table}").scan().to_arrow()


def of_day(rows: pa.Table, column: str, day: date) -> list[dict[str, Any]]:
    out = []
    for row in rows.to_pylist():
        value = row[column]
        if (value.date() if isinstance(value, datetime) else value) == day:
            out.append(row)
    return out


def digest(rows: list[dict[str, Any]]) -> str:
    lines = sorted(orjson.dumps(r, default=str, option=orjson.OPT_SORT_KEYS) for r in rows)
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture(scope="module")
def batch_stack() -> Iterator[Stack]:
    """A stack of its own: this module loads its own population and registers CDC, which the
    dimension tests (exact snapshots of theirs) must not see on the shared stack."""
    with running_stack(stack_settings(f"{STACK_NAME}-batch", PORT_OFFSET + 3000)) as local:
        yield local


@pytest.fixture(scope="module")
def run(batch_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = batch_stack.settings
    folder = tmp_path_factory.mktemp("batch")
    today = datetime.now(UTC).date()
    day = today - timedelta(days=1)
    load_dimensions(settings, USERS, PRODUCTS, SEED)
    cdc.register(settings)
    wait_until(lambda: cdc_records(settings) >= USERS, 120, "the users snapshot in Kafka")
    truth_path = folder / "truth.json"
    cli(
        settings, folder, "generate", "generate", "--events", str(EVENTS), "--rate", "0",
        "--duration", "24h", "--start", f"{day.isoformat()}T00:00:00Z", "--seed", str(SEED),
        "--users", str(USERS), "--products", str(PRODUCTS), "--faults", FAULTS,
        "--truth", str(truth_path),
    )  # fmt: skip
    repeats = resend_far_apart(settings, FAR_REPEATS, day)
    before_churn = cdc_records(settings)
    cli(settings, folder, "churn", "dims", "churn", "--changes", "40", "--rate", "0", "--seed", "3")
    tier = change_tier_between_two_events(settings)
    wait_until(lambda: cdc_records(settings) > before_churn + 1, 120, "the churn in Kafka")
    time.sleep(8)  # Debezium publishes the last changes
    cli(
        settings,
        folder,
        "archive",
        "lake",
        "archive",
        "--commit-interval",
        "3s",
        "--until-idle",
        "8",
    )
    out = cli(
        settings, folder, "batch", "batch", "run", "--from", day.isoformat(), "--to",
        today.isoformat(), "--driver-memory", "1g", "--no-warehouse", "--json",
    )  # fmt: skip
    summary = json_of(out)
    yield Run(
        settings, folder, day, today, orjson.loads(truth_path.read_bytes()), repeats, tier, summary
    )


def test_curated_events_equal_the_truth_by_type_and_tier(run: Run) -> None:
    events = curated(run.settings, "events")
    for day in (run.day, run.today):
        rows = of_day(events, "timestamp", day)
        hand_made = {run.tier.before, run.tier.after} if day == run.today else set()
        got = Counter(
            (r["event_type"], r["user_tier"]) for r in rows if r["event_id"] not in hand_made
        )
        wanted = Counter(
            {
                (kind, tier): n
                for kind, tiers in run.truth["events_by_day"].get(day.isoformat(), {}).items()
                for tier, n in tiers.items()
            }
        )
        assert got == wanted, day
        assert len({r["event_id"] for r in rows}) == len(rows)
    assert not set(run.repeats) - {r["event_id"] for r in events.to_pylist()}


def test_transactions_and_money_by_tier_equal_the_truth(run: Run) -> None:
    rows = of_day(curated(run.settings, "transactions"), "timestamp", run.day)
    count = Counter(r["user_tier"] for r in rows)
    money: dict[str, Counter[str]] = {name: Counter() for name in MONEY}
    for r in rows:
        money["gross_bookings"][r["user_tier"]] += r["total_amount"]
        if r["status"] in MONEY_OF_STATUS:
            money[MONEY_OF_STATUS[r["status"]]][r["user_tier"]] += r["total_amount"]
    assert dict(count) == run.truth["transactions_by_day"][run.day.isoformat()]
    for name, by_tier in money.items():
        assert dict(by_tier) == truth_money(run.truth, name, run.day), name


def test_every_session_equals_the_truth(run: Run) -> None:
    rows = of_day(curated(run.settings, "sessions"), "session_start", run.day)
    got = {
        r["session_id"]: (
            stamp(r["session_start"]),
            stamp(r["session_end"]),
            r["event_count"],
            r["revenue"],  # the speed layer's sessionization: gross bookings (data-model.md)
            r["converted"],
            r["user_tier"],
        )
        for r in rows
    }
    assert len(got) == len(rows), "a session_id twice in one day"
    wanted = {
        s["session_id"]: (
            s["start"],
            s["end"],
            s["events"],
            Decimal(s["gross_bookings"]),
            s["converted"],
            s["tier"],
        )
        for s in run.truth["sessions"]
        if s["start"].startswith(run.day.isoformat())
    }
    assert got == wanted
    crossing = [s for s in wanted.values() if not s[1].startswith(run.day.isoformat())]
    print(f"sessions crossing midnight: {len(crossing)}")


def test_dead_letters_duplicates_and_conservation(run: Run) -> None:
    days = run.summary["days"]
    assert all(d["conserved"] for d in days)
    by_reason: Counter[str] = Counter()
    for d in days:
        by_reason.update(d["dead_letters"])
    faults = run.truth["faults"]
    assert dict(by_reason) == faults["expected_dead_letters"]
    assert sum(d["duplicates"] for d in days) == faults["duplicates_injected"] + FAR_REPEATS
    stored = Counter()
    dead = curated(run.settings, "dead_letters").to_pylist()
    for row in dead:
        stored[row["reason"]] += 1
        assert row["raw"] is not None and row["source_offset"] is not None
    assert dict(stored) == faults["expected_dead_letters"]
    # the lake's records = the days' records: every raw record has exactly one day
    raw = produced(run.settings, run.settings.kafka.events_topic) + produced(
        run.settings, run.settings.kafka.transactions_topic
    )
    assert sum(d["raw_records"] for d in days) == raw


def test_a_tier_change_splits_the_users_events_at_its_moment(run: Run) -> None:
    events = {
        r["event_id"]: r for r in of_day(curated(run.settings, "events"), "timestamp", run.today)
    }
    assert events[run.tier.before]["user_tier"] == run.tier.old
    assert events[run.tier.after]["user_tier"] == run.tier.new
    history = [
        r
        for r in curated(run.settings, "users_history").to_pylist()
        if r["user_id"] == run.tier.user_id
    ]
    current = [r for r in history if r["is_current"]]
    assert len(current) == 1 and current[0]["tier"] == run.tier.new
    assert abs(current[0]["valid_from"] - run.tier.changed_at) < timedelta(seconds=1)


def test_rerunning_a_day_changes_nothing(run: Run) -> None:
    tables = {"events": "timestamp", "transactions": "timestamp", "sessions": "session_start"}

    def snapshot() -> dict[str, tuple[int, str]]:
        out = {}
        for table, column in {**tables, "dead_letters": "event_day"}.items():
            rows = of_day(curated(run.settings, table), column, run.day)
            out[table] = (len(rows), digest(rows))
        return out

    first = snapshot()
    out = cli(
        run.settings, run.folder, "batch-again", "batch", "run", "--date", run.day.isoformat(),
        "--driver-memory", "1g", "--no-warehouse", "--json",
    )  # fmt: skip
    again = json_of(out)["days"][0]
    assert again["rows"] == run.summary["days"][0]["rows"]
    assert snapshot() == first


@dataclass
class Marts:
    """The batch run into the warehouse (both days), and every mart's rows as it left them."""

    summary: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def marts(run: Run) -> Marts:
    """Both days again, now with the warehouse step: RAW loaded, dbt built; marts read once."""
    out = cli(
        run.settings, run.folder, "batch-warehouse", "batch", "run", "--from", run.day.isoformat(),
        "--to", run.today.isoformat(), "--driver-memory", "1g", "--json",
    )  # fmt: skip
    with Resources(run.settings).warehouse() as warehouse:
        rows = {m: warehouse.query_arrow(f"SELECT * FROM marts.{m}").to_pylist() for m in MARTS}
    return Marts(json_of(out), rows)


def truth_money(truth: dict[str, Any], name: str, day: date) -> dict[str, Decimal]:
    """The truth's `name` (gross_bookings, revenue, refunds) by tier on `day`."""
    return {k: Decimal(v) for k, v in truth[f"{name}_by_day"].get(day.isoformat(), {}).items()}


def expected_events(run: Run) -> Counter[tuple[date, str, str]]:
    """Valid events by (day, event type, tier): the truth's, and the two hand-made page views
    on either side of the tier change."""
    out: Counter[tuple[date, str, str]] = Counter()
    for day, kinds in run.truth["events_by_day"].items():
        for kind, tiers in kinds.items():
            for tier, n in tiers.items():
                out[date.fromisoformat(day), kind, tier] += n
    out[run.today, "page_view", run.tier.old] += 1
    out[run.today, "page_view", run.tier.new] += 1
    return out


def expected_sessions(run: Run) -> list[dict[str, Any]]:
    """Every session of the truth, and the hand-made one (its tier: the one at its start)."""
    hand_made = {
        "session_id": run.tier.session_id,
        "user_id": run.tier.user_id,
        "tier": run.tier.old,
        "start": stamp(run.tier.sent[0]),
        "end": stamp(run.tier.sent[1]),
        "events": 2,
        "converted": False,
        "gross_bookings": "0.00",
        "revenue": "0.00",
    }
    return [*run.truth["sessions"], hand_made]


def days_of(session: dict[str, Any]) -> set[date]:
    """The days a session has events on (it lasts less than a day)."""
    return {date.fromisoformat(session[end][:10]) for end in ("start", "end")}


def utc_stamp(moment: datetime) -> str:
    """`stamp` of a warehouse timestamp (UTC, without a zone)."""
    return stamp(moment.replace(tzinfo=UTC))


def money_of(row: dict[str, Any]) -> tuple[Decimal, ...]:
    return tuple(Decimal(row[name]) for name in MONEY)


def test_the_warehouse_raw_holds_each_curated_day_and_dbt_builds(run: Run, marts: Marts) -> None:
    summary = marts.summary
    assert summary["dbt"]["success"], [n for n in summary["dbt"]["nodes"] if n["status"] != "pass"]
    for d in summary["days"]:
        loaded = summary["raw_loaded"][d["day"]]
        assert loaded["user_events"] == d["rows"]["events"]
        assert loaded["transactions"] == d["rows"]["transactions"]
        assert loaded["dead_letters"] == d["rows"]["dead_letters"]
    with Resources(run.settings).warehouse() as warehouse:
        rows = warehouse.query_arrow(
            "SELECT user_tier, count(*) AS n FROM raw.user_events "
            f"WHERE batch_day = DATE '{run.day.isoformat()}' GROUP BY user_tier"
        ).to_pylist()
    by_tier = {r["user_tier"]: r["n"] for r in rows}
    wanted: Counter[str] = Counter()
    for tiers in run.truth["events_by_day"][run.day.isoformat()].values():
        wanted.update(tiers)
    assert by_tier == dict(wanted)


def test_daily_metrics_equal_the_truth(run: Run, marts: Marts) -> None:
    daily = {r["metric_date"]: r for r in marts.rows["daily_metrics"]}
    assert set(daily) == {run.day, run.today}
    events = expected_events(run)
    sessions = expected_sessions(run)
    for day, row in daily.items():
        by_type: Counter[str] = Counter()
        for (d, kind, _), n in events.items():
            by_type[kind] += n if d == day else 0
        assert {kind: row[column] for kind, column in COUNTS.items()} == {
            kind: by_type[kind] for kind in COUNTS
        }, day
        assert row["events"] == by_type.total()
        assert row["events_breaking_rules"] == 0, day
        assert row["users"] == len({s["user_id"] for s in sessions if day in days_of(s)})
        started = [s for s in sessions if s["start"].startswith(day.isoformat())]
        assert (row["sessions"], row["converted_sessions"]) == (
            len(started),
            sum(s["converted"] for s in started),
        ), day
        transactions = run.truth["transactions_by_day"].get(day.isoformat(), {})
        assert row["transactions"] == sum(transactions.values())
        assert money_of(row) == tuple(
            sum(truth_money(run.truth, name, day).values(), Decimal(0)) for name in MONEY
        ), day


def test_dead_letters_in_the_marts_equal_the_truth_by_reason(run: Run, marts: Marts) -> None:
    reasons = run.truth["faults"]["expected_dead_letters"]
    by_reason: Counter[str] = Counter()
    by_day = {}
    for row in marts.rows["daily_metrics"]:
        day = row["metric_date"].isoformat()
        by_day[day] = {
            reason: row[f"dead_letters_{reason}"]
            for reason in REJECTION_REASONS
            if row[f"dead_letters_{reason}"]
        }
        by_reason.update(by_day[day])
        assert row["dead_letters"] == sum(by_day[day].values())
    assert dict(by_reason) == reasons
    # each on the day the batch job gave it
    assert by_day == {d["day"]: d["dead_letters"] for d in run.summary["days"]}


def test_tier_behaviour_equals_the_truth_by_day_and_tier(run: Run, marts: Marts) -> None:
    rows = marts.rows["tier_behaviour"]
    counted = Counter(
        {
            (r["activity_date"], kind, r["user_tier"]): r[column]
            for r in rows
            for kind, column in COUNTS.items()
            if r[column]
        }
    )
    assert counted == expected_events(run)
    by_tier = {(r["activity_date"], r["user_tier"]): r for r in rows}
    for (day, tier), r in by_tier.items():
        assert r["events"] == sum(r[column] for column in COUNTS.values())
        transactions = run.truth["transactions_by_day"].get(day.isoformat(), {})
        assert r["transactions"] == transactions.get(tier, 0), (day, tier)
        assert money_of(r) == tuple(
            truth_money(run.truth, name, day).get(tier, Decimal(0)) for name in MONEY
        ), (day, tier)
    sessions: Counter[tuple[date, str]] = Counter()
    converted: Counter[tuple[date, str]] = Counter()
    for s in expected_sessions(run):
        key = (date.fromisoformat(s["start"][:10]), s["tier"])
        sessions[key] += 1
        converted[key] += s["converted"]
    assert {key: r["sessions"] for key, r in by_tier.items() if r["sessions"]} == sessions
    assert {key: r["converted_sessions"] for key, r in by_tier.items() if r["sessions"]} == {
        key: converted[key] for key in sessions
    }


def test_user_sessions_are_every_session_of_the_truth(run: Run, marts: Marts) -> None:
    rows = marts.rows["user_sessions"]
    got = {
        r["session_id"]: (
            utc_stamp(r["session_start"]),
            utc_stamp(r["session_end"]),
            r["event_count"],
            r["gross_bookings"],
            r["revenue"],
            r["converted"],
            r["user_tier"],
            r["user_id"],
        )
        for r in rows
    }
    assert len(got) == len(rows), "a session twice"
    wanted = {
        s["session_id"]: (
            s["start"],
            s["end"],
            s["events"],
            Decimal(s["gross_bookings"]),
            Decimal(s["revenue"]),
            s["converted"],
            s["tier"],
            s["user_id"],
        )
        for s in expected_sessions(run)
    }
    assert got == wanted
    for r in rows:
        assert r["session_date"] == r["session_start"].date()
        span = r["session_end"] - r["session_start"]
        assert r["duration_s"] == span // timedelta(seconds=1)
    # the sessions' money adds up to the truth's of every day
    for name in MONEY[:2]:
        days = (run.day, run.today)
        truth = sum(
            (sum(truth_money(run.truth, name, d).values(), Decimal(0)) for d in days), Decimal(0)
        )
        assert sum((r[name] for r in rows), Decimal(0)) == truth, name


def test_conversion_funnel_equals_the_truth(run: Run, marts: Marts) -> None:
    # the truth's funnel counts the generated sessions, which all start on the day
    assert all(s["start"].startswith(run.day.isoformat()) for s in run.truth["sessions"])
    steps = [step for step in run.truth["funnel"] if step != "sessions"]
    by_day: dict[date, Counter[str]] = {}
    by_tier: Counter[tuple[date, str]] = Counter()
    for r in marts.rows["conversion_funnel"]:
        day = by_day.setdefault(r["session_date"], Counter())
        day["sessions"] += r["sessions"]
        for step in steps:
            day[step] += r[f"sessions_with_{step}"]
        by_tier[r["session_date"], r["user_tier"]] += r["sessions"]
        assert r["reached_purchase"] <= r["sessions_with_purchase"]
    assert by_day == {
        run.day: Counter(run.truth["funnel"]),
        run.today: Counter({"sessions": 1, "page_view": 1}),  # the hand-made session
    }
    assert by_tier == Counter(
        (date.fromisoformat(s["start"][:10]), s["tier"]) for s in expected_sessions(run)
    )


def test_customer_lifetime_value_equals_the_truth_per_user(run: Run, marts: Marts) -> None:
    wanted: dict[str, dict[str, Any]] = {}
    for s in expected_sessions(run):
        user = wanted.setdefault(
            s["user_id"],
            {"sessions": 0, "converted_sessions": 0, "events": 0, "days": set(), "tier": s["tier"]}
            | dict.fromkeys(MONEY[:2], Decimal(0))
            | {"first_seen_at": s["start"], "last_seen_at": s["end"]},
        )
        user["sessions"] += 1
        user["converted_sessions"] += s["converted"]
        user["events"] += s["events"]
        user["days"] |= days_of(s)
        for name in MONEY[:2]:
            user[name] += Decimal(s[name])
        user["first_seen_at"] = min(user["first_seen_at"], s["start"])
        user["last_seen_at"] = max(user["last_seen_at"], s["end"])
    wanted[run.tier.user_id]["tier"] = run.tier.new  # its last event is after the change
    got = {
        r["user_id"]: {
            "sessions": r["sessions"],
            "converted_sessions": r["converted_sessions"],
            "events": r["events"],
            "days": r["active_days"],
            "tier": r["current_tier"],
            "gross_bookings": r["gross_bookings"],
            "revenue": r["revenue"],
            "first_seen_at": utc_stamp(r["first_seen_at"]),
            "last_seen_at": utc_stamp(r["last_seen_at"]),
        }
        for r in marts.rows["customer_lifetime_value"]
    }
    assert got == {user: w | {"days": len(w["days"])} for user, w in wanted.items()}


def test_product_performance_adds_up_to_the_truth_with_the_catalogue(
    run: Run, marts: Marts
) -> None:
    catalogue = {p.product_id: (p.name, p.category) for p in products(PRODUCTS, SEED)}
    events = expected_events(run)
    rows = marts.rows["product_performance"]
    for r in rows:
        assert (r["product_name"], r["product_category"]) == catalogue[r["product_id"]]
    columns = {
        "product_view": "views",
        "add_to_cart": "add_to_carts",
        "remove_from_cart": "remove_from_carts",
        "purchase": "purchases",
    }
    for day in (run.day, run.today):
        of_day = [r for r in rows if r["event_date"] == day]
        assert {kind: sum(r[column] for r in of_day) for kind, column in columns.items()} == {
            kind: sum(n for (d, k, _), n in events.items() if (d, k) == (day, kind))
            for kind in columns
        }, day
        for name in MONEY[:2]:
            total = sum((r[name] for r in of_day), Decimal(0))
            assert total == sum(truth_money(run.truth, name, day).values(), Decimal(0)), name


# ---- batch publication into the serving store and the merged API (issue 16, H1) ---------------


def test_the_published_day_answers_the_merged_api_as_the_truth(
    run: Run, batch_stack: Stack
) -> None:
    settings, day = run.settings, run.day
    batch_stack.up(["serving"], progress=lambda line: None)
    publish = ("batch", "publish", "--date", day.isoformat(), "--json")
    first = json_of(cli(settings, run.folder, "publish", *publish))["publications"]
    again = json_of(cli(settings, run.folder, "publish-again", *publish))["publications"]
    assert [p["published"] for p in first] == [True]
    assert again == [
        first[0] | {"published": False, "previous_run": first[0]["run_id"], "rows": {}}
    ]
    assert first[0]["rows"]["user_sessions"] == sum(
        s["start"].startswith(day.isoformat()) for s in run.truth["sessions"]
    )
    days = {"start": day.isoformat(), "end": run.today.isoformat()}

    funnel = api(settings, "funnel", **days)
    assert funnel["watermark"] == day.isoformat() and funnel["sources"] == ["batch"]
    assert funnel["sessions"] == run.truth["funnel"]["sessions"]
    steps = {s["step"]: s["sessions"] for s in funnel["steps"]}
    assert steps["page_view"] == run.truth["funnel"]["page_view"]  # step 1: the same definition
    # the later steps as the funnel defines them, from the curated sessions' counts per type
    reached: Counter[str] = Counter()
    for session in of_day(curated(settings, "sessions"), "session_start", day):
        for step, count in zip(FUNNEL_STEPS, FUNNEL_STEP_COUNTS, strict=True):
            if not session[count]:
                break
            reached[step] += 1
    assert steps == {step: reached[step] for step in FUNNEL_STEPS}

    sessions = [s for s in run.truth["sessions"] if s["start"].startswith(day.isoformat())]
    tiers = {r["user_tier"]: r for r in api(settings, "tiers", **days)}
    assert {t: r["sessions"] for t, r in tiers.items()} == Counter(s["tier"] for s in sessions)
    assert {t: r["converted_sessions"] for t, r in tiers.items()} == {
        t: sum(s["converted"] for s in sessions if s["tier"] == t) for t in tiers
    }
    for tier, row in tiers.items():
        gross = sum(
            (Decimal(s["gross_bookings"]) for s in sessions if s["tier"] == tier), Decimal(0)
        )
        assert Decimal(str(row["revenue"])).quantize(Decimal("0.01")) == gross, tier

    revenue = api(settings, "revenue", interval="day", **days)
    assert [(r["bucket"][:10], r["source"]) for r in revenue] == [(day.isoformat(), "batch")]
    completed = sum(truth_money(run.truth, "revenue", day).values(), Decimal(0))
    assert Decimal(str(revenue[0]["revenue"])).quantize(Decimal("0.01")) == completed

    products = api(
        settings, "products/top", limit="100", start=day.isoformat(), end=day.isoformat()
    )
    events = expected_events(run)
    for kind, column in (
        ("product_view", "views"),
        ("add_to_cart", "add_to_carts"),
        ("purchase", "purchases"),
    ):
        assert sum(p[column] for p in products) == sum(
            n for (d, k, _), n in events.items() if (d, k) == (day, kind)
        ), kind
    gross = sum(truth_money(run.truth, "gross_bookings", day).values(), Decimal(0))
    assert Decimal(str(sum(p["revenue"] for p in products))).quantize(Decimal("0.01")) == gross
    # nothing reached the realtime tables in this module: the realtime answer is empty
    assert api(settings, "funnel", source="realtime", **days)["sessions"] == 0
