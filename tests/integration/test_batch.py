"""The batch layer on the real stack: generator -> Kafka -> lake archiver -> `batch run` ->
curated Iceberg tables, compared with the generator's truth exactly.

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
from confluent_kafka import Consumer, Producer, TopicPartition

from lambdapipe.contracts import validate_event
from lambdapipe.ingest import cdc
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings, as_environment
from lambdapipe.topics import quiet
from tests.pipeline_checks import produced, send_event
from tests.stacks import PORT_OFFSET, STACK_NAME, running_stack, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS, PRODUCTS, SEED = 200, 60, 23
EVENTS = 20_000
FAULTS = (
    "duplicate=0.02,late=0.01:2h,out_of_order=0.01,malformed=0.004,schema=0.01,unknown_user=0.01"
)
FAR_REPEATS = 25


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
    """Records in the users CDC topic (0 until Debezium creates it, with its own partitions)."""
    topic = cdc.topic(settings, "users")
    consumer = Consumer(quiet({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "x"}))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        total = 0
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


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
    before: str  # event_id
    after: str


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
        before = send_event(settings, settings.kafka.events_topic, user_id, session)
        time.sleep(1.5)
        (changed_at,) = conn.execute(
            "UPDATE users SET tier = %s WHERE user_id = %s RETURNING updated_at", (new, user_id)
        ).fetchone()  # type: ignore[misc]
        time.sleep(1.5)
        after = send_event(settings, settings.kafka.events_topic, user_id, session)
    return TierChange(user_id, old, new, changed_at, before, after)


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


def test_transactions_and_revenue_by_tier_equal_the_truth(run: Run) -> None:
    rows = of_day(curated(run.settings, "transactions"), "timestamp", run.day)
    count = Counter(r["user_tier"] for r in rows)
    revenue: Counter[str] = Counter()
    for r in rows:
        revenue[r["user_tier"]] += r["total_amount"]
    assert dict(count) == run.truth["transactions_by_day"][run.day.isoformat()]
    expected = {k: Decimal(v) for k, v in run.truth["revenue_by_day"][run.day.isoformat()].items()}
    assert dict(revenue) == expected


def test_every_session_equals_the_truth(run: Run) -> None:
    rows = of_day(curated(run.settings, "sessions"), "session_start", run.day)
    got = {
        r["session_id"]: (
            stamp(r["session_start"]),
            stamp(r["session_end"]),
            r["event_count"],
            r["revenue"],
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
            Decimal(s["revenue"]),
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


def test_the_warehouse_raw_holds_each_curated_day_and_dbt_builds(run: Run) -> None:
    out = cli(
        run.settings, run.folder, "batch-warehouse", "batch", "run", "--from", run.day.isoformat(),
        "--to", run.today.isoformat(), "--driver-memory", "1g", "--json",
    )  # fmt: skip
    summary = json_of(out)
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
