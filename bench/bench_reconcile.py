"""Reconcile one day of `--events` events (default 10M) end to end: `lambdapipe reconcile
--date D --json` against a real `lambdapipe serve` store and a DuckDB warehouse; wall time
(median, min, max of `--runs`), each phase (read speed, read batch, compare, write), CPU
seconds and peak RSS. Same-run baseline: the day's events counted by type and tier in each
layer's engine (one scan of each layer's day, nothing moved), in this process.

The shortcut (docs/reconcile.md, Performance): both layers are synthesized in their engines,
INSERT ... SELECT from `numbers()` (the store, as the writer, through the serve process's HTTP
endpoint) and `range()` (DuckDB), into the tables and columns the real layers write: the
realtime tables, the warehouse's RAW tables with dbt's staging views over them (built by the
real dbt project) and a `marts.user_sessions` table with the columns reconcile reads, grouped
from RAW by session id (the mart's own model would take minutes over 10M events). Event `i`
has the same ids in both engines (a formula of `i`), sessions of 8 events, 200K users, the
event type mix of ARCHITECTURE.md, a transaction per purchase. So the attribution has work:
0.2% of the events late (dead-lettered `late` by the speed layer, in the batch), 0.2% accepted
twice by the speed layer, the users of 0.2% of the population with another tier in speed, and
5,000 malformed records dead-lettered by both; the reconciliation must find unexplained = 0.

Usage: uv run python bench/bench_reconcile.py [--events 10000000] [--runs 3]
       [--port-offset 24000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lambdapipe.reconcile.layers import FUNNEL_COUNTS, day_bounds
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings, as_environment
from lambdapipe.warehouse.base import Warehouse
from measure import RESULTS, bench_settings, measured

EVENT_TYPES = (  # (type, share in %): ARCHITECTURE.md
    ("page_view", 35),
    ("product_view", 25),
    ("search", 15),
    ("add_to_cart", 10),
    ("purchase", 5),
    ("remove_from_cart", 4),
    ("checkout_start", 3),
    ("login", 2),
    ("logout", 1),
)
TIERS = (("bronze", 60), ("silver", 25), ("gold", 12), ("platinum", 3))
USERS = 200_000
SESSION_EVENTS = 8
MALFORMED = 5_000
# per mille of the events (i % 1000): late in speed (87: a purchase, its transaction too),
# accepted twice by speed (88: a purchase); users k % 499 == 3 have another tier in speed
LATE = (7, 87)
TWICE = (13, 88)
CHUNK = 500_000  # events per INSERT ... SELECT into the store (whole sessions)
STATUSES = ("completed",) * 7 + ("pending", "refunded", "failed")


class Dialect:
    """The few expressions that differ between ClickHouse and DuckDB."""

    def __init__(self, name: str) -> None:
        self.name = name

    def div(self, a: str, b: int) -> str:
        return f"intDiv({a}, {b})" if self.name == "clickhouse" else f"({a} // {b})"

    def hex(self, value: str, width: int) -> str:
        if self.name == "clickhouse":
            return f"leftPad(lower(hex(toUInt64({value}))), {width}, '0')"
        return f"lpad(lower(hex(CAST({value} AS UBIGINT))), {width}, '0')"

    def uuid(self, n: str, tag: str) -> str:
        """A version-4-shaped UUID of the number `n` (`tag`: 4 hex digits per kind of id)."""
        mixed = f"(({n}) * 2654435761) % 4294967296"
        text = f"{self.hex(mixed, 8)} || '-{tag}-4000-8000-' || {self.hex(n, 12)}"
        return f"toUUID({text})" if self.name == "clickhouse" else f"({text})"

    def at(self, epoch_ms: str) -> str:
        if self.name == "clickhouse":
            return f"fromUnixTimestamp64Milli(toInt64({epoch_ms}), 'UTC')"
        return f"epoch_ms(CAST({epoch_ms} AS BIGINT))"


def _share(column: str, values: tuple[tuple[str, int], ...], scale: int) -> str:
    """CASE over `column % 100` (or per mille) giving each value its share."""
    out, bound = [], 0
    for value, share in values[:-1]:
        bound += share * scale
        out.append(f"WHEN {column} < {bound} THEN '{value}'")
    return f"CASE {' '.join(out)} ELSE '{values[-1][0]}' END"


def user_of(session: str) -> str:
    """The user of a session (spread so tiers and event types do not align)."""
    return f"(({session}) * 7919 % {USERS})"


def event_columns(d: Dialect, day: date, events: int) -> dict[str, str]:
    """Event `i`'s columns (over a column `i`), the same values in both engines."""
    start_ms = int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)
    sessions = max(1, events // SESSION_EVENTS)
    session = d.div("i", SESSION_EVENTS)
    user = user_of(session)
    # sessions spread over the day's first 86,000 s (8 events 1 s apart stay inside the day)
    first = f"{start_ms} + {d.div(f'{session} * 86000000', sessions)}"
    return {
        "event_id": d.uuid("i", "0e0e"),
        "user_id": d.uuid(user, "0a0a"),
        "session_id": d.uuid(session, "0b0b"),
        "event_type": _share("(i % 100)", EVENT_TYPES, 1),
        "timestamp": d.at(f"{first} + (i % {SESSION_EVENTS}) * 1000"),
        "device_type": "'desktop'",
        "browser": "'chrome'",
        "ip_address": "'10.0.0.1'",
        "user_tier": _share(f"({user} % 100)", TIERS, 1),
        "session_start": d.at(first),
    }


def speed_tier(batch_tier: str, user: str) -> str:
    """Another tier for the users k % 499 == 3 (a change between event and processing time)."""
    return (
        f"CASE WHEN {user} % 499 = 3 THEN "
        f"(CASE WHEN {batch_tier} = 'platinum' THEN 'gold' ELSE 'platinum' END) "
        f"ELSE {batch_tier} END"
    )


def is_purchase(i: str) -> str:
    return f"({i} % 100 >= 85 AND {i} % 100 < 90)"


def transaction_columns(d: Dialect, columns: dict[str, str]) -> dict[str, str]:
    return {
        "transaction_id": d.uuid("i", "0c0c"),
        "user_id": columns["user_id"],
        "session_id": columns["session_id"],
        "product_id": d.uuid("(i % 1000)", "0d0d"),
        "quantity": "1",
        "unit_price": "CAST(1 AS DECIMAL(10, 2))",
        "discount_amount": "CAST(0 AS DECIMAL(10, 2))",
        "tax_amount": "CAST(0 AS DECIMAL(10, 2))",
        "total_amount": "CAST(i % 100 + 1 AS DECIMAL(10, 2))",
        "currency": "'USD'",
        "payment_method": "'paypal'",
        "status": "CASE "
        + " ".join(f"WHEN i % 10 = {n} THEN '{s}'" for n, s in enumerate(STATUSES[:-1]))
        + f" ELSE '{STATUSES[-1]}' END",
        "timestamp": columns["timestamp"],
        "user_tier": columns["user_tier"],
    }


def fill_store(store: ServingStore, day: date, events: int) -> None:
    """The speed layer's day: every event but the late ones, some twice, some tiers changed;
    its sessions grouped by session id; the late ones' and the malformed dead letters. In
    chunks of events (whole sessions), each statement within the store's query timeout."""
    d = Dialect("clickhouse")
    columns = event_columns(d, day, events)
    user = user_of(d.div("i", SESSION_EVENTS))
    speed = {**columns, "user_tier": speed_tier(columns["user_tier"], user)}
    del speed["session_start"]
    names = ", ".join(speed)
    tx = transaction_columns(d, speed)
    late_at = d.at(f"{_ms(day + timedelta(days=1))} + 3600000")

    def raw(key: str, uuid: str) -> str:
        """The record's JSON bytes: its id, session id and event time."""
        quote = "'\"'"
        parts = [
            f'\'{{"{key}":"\'',
            f"toString({uuid})",
            '\'","session_id":"\'',
            f"toString({columns['session_id']})",
            '\'","timestamp":"\'',
            f"formatDateTime({columns['timestamp']}, '%Y-%m-%dT%H:%i:%S.000Z', 'UTC')",
            quote,
            "'}'",
        ]
        return f"concat({', '.join(parts)})"

    counts = ", ".join(
        f"countIf(event_type = '{kind}')"
        for kind in ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
    )
    for start in range(0, events, CHUNK):
        chunk = f"numbers({start}, {min(CHUNK, events - start)})"
        rows = (
            f"(SELECT number AS i FROM {chunk} WHERE i % 1000 NOT IN {LATE} "
            f"UNION ALL SELECT number FROM {chunk} WHERE number % 1000 IN {TWICE})"
        )
        store.execute(
            f"INSERT INTO user_events_realtime ({names}) "
            f"SELECT {', '.join(speed.values())} FROM {rows}"
        )
        store.execute(
            f"INSERT INTO transactions_realtime ({', '.join(tx)}) "
            f"SELECT {', '.join(tx.values())} FROM {rows} WHERE {is_purchase('i')}"
        )
        store.execute(
            "INSERT INTO user_sessions_realtime (session_id, user_id, session_start, "
            f"session_end, event_count, user_tier, {', '.join(FUNNEL_COUNTS)}) "
            "SELECT session_id, any(user_id), min(timestamp), max(timestamp), count(), "
            f"any(user_tier), {counts} "
            f"FROM (SELECT {', '.join(f'{v} AS {k}' for k, v in speed.items())} FROM {rows}) "
            "GROUP BY session_id"
        )
        for topic, condition, key, uuid in (
            ("events", f"i % 1000 IN {LATE}", "event_id", columns["event_id"]),
            ("transactions", f"i % 1000 = {LATE[1]}", "transaction_id", tx["transaction_id"]),
        ):
            store.execute(
                "INSERT INTO dead_letters_realtime (dead_lettered_at, source_topic, "
                "source_partition, source_offset, reason, detail, raw) "
                f"SELECT {late_at}, '{topic}', i % 6, i, 'late', 'beyond the lateness', "
                f"{raw(key, uuid)} FROM (SELECT number AS i FROM {chunk}) WHERE {condition}"
            )
    # one event the next morning: the speed layer has passed the day and its lateness
    after = {**speed, "timestamp": d.at(f"{_ms(day + timedelta(days=1))} + 7200000")}
    store.execute(
        f"INSERT INTO user_events_realtime ({names}) "
        f"SELECT {', '.join(after.values())} FROM (SELECT {events} AS i)"
    )
    store.execute(
        "INSERT INTO dead_letters_realtime (dead_lettered_at, source_topic, source_partition, "
        "source_offset, reason, detail, raw) "
        f"SELECT {d.at(str(_ms(day) + 43200000))}, 'events', i % 6, {events} + i, 'not_json', "
        f"'', '{{bad' FROM (SELECT number AS i FROM numbers({MALFORMED}))"
    )


def fill_warehouse(warehouse: Warehouse, day: date, events: int) -> None:
    """The batch layer's day in RAW: every event once with its tier as of event time, a
    transaction per purchase, the malformed dead letters; the sessions mart by session id."""
    d = Dialect("duckdb")
    columns = event_columns(d, day, events)
    events_sql = (
        f"SELECT {', '.join(f'{v} AS {k}' for k, v in columns.items())}, i "
        f"FROM (SELECT range AS i FROM range({events}))"
    )
    load = "DATE '{day}' AS batch_day, now()::TIMESTAMP AS loaded_at, 'bench' AS batch_id"
    bookkeeping = load.format(day=day.isoformat())
    warehouse.execute(
        "INSERT INTO raw.user_events BY NAME SELECT * EXCLUDE (i), "
        "session_id || '/' || CAST(epoch_ms(session_start) AS VARCHAR) AS session_key, "
        f"{bookkeeping} FROM ({events_sql})"
    )
    tx = transaction_columns(d, {**columns})
    warehouse.execute(
        "INSERT INTO raw.transactions BY NAME SELECT "
        f"{', '.join(f'{v} AS {k}' for k, v in tx.items())}, {bookkeeping} "
        f"FROM (SELECT range AS i FROM range({events})) WHERE {is_purchase('i')}"
    )
    warehouse.execute(
        "INSERT INTO raw.dead_letters BY NAME SELECT 'events' AS source_topic, "
        f"CAST(i % 6 AS INTEGER) AS source_partition, {events} + i AS source_offset, "
        f"{d.at(str(_ms(day) + 43200000))} AS kafka_timestamp, 'not_json' AS reason, "
        f"'' AS detail, CAST('{{bad' AS BLOB) AS raw, {bookkeeping} "
        f"FROM (SELECT range AS i FROM range({MALFORMED}))"
    )
    counts = ", ".join(
        f"count_if(event_type = '{kind}') AS {column}"
        for kind, column in zip(
            ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase"),
            FUNNEL_COUNTS,
            strict=True,
        )
    )
    warehouse.execute("CREATE SCHEMA IF NOT EXISTS marts")
    warehouse.execute(
        "CREATE OR REPLACE TABLE marts.user_sessions AS SELECT session_id, "
        f"min(user_tier) AS user_tier, CAST(min(timestamp) AS DATE) AS session_date, {counts} "
        "FROM raw.user_events GROUP BY session_id"
    )


def _ms(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)


def staging_views(settings: Settings, log: Path) -> None:
    """dbt's staging views over RAW (the real project, in its own process: DuckDB's lock)."""
    script = (
        "from lambdapipe.settings import get_settings\n"
        "from lambdapipe.warehouse import transform\n"
        "transform.run_dbt(get_settings(), ['run', '--select', 'staging'])\n"
    )
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, **as_environment(settings)},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=900,
        )


def baseline(settings: Settings, day: date) -> dict[str, float]:
    """The floor of any reconciliation that reads each layer's day once: the day's events
    counted by type and tier in each engine (one scan, nothing moved)."""
    start, end = day_bounds(day)
    resources = Resources(settings)
    out = {}
    with resources.store(role="reader") as store:
        began = time.perf_counter()
        store.query_arrow(
            "SELECT event_type, user_tier, count() FROM user_events_realtime "
            "WHERE timestamp >= {start:DateTime64(3, 'UTC')} "
            "AND timestamp < {end:DateTime64(3, 'UTC')} GROUP BY ALL",
            {"start": start, "end": end},
        )
        out["speed_events_counted"] = round(time.perf_counter() - began, 3)
    with resources.warehouse() as warehouse:
        began = time.perf_counter()
        warehouse.query_arrow(
            "SELECT event_type, user_tier, count(*) FROM staging.stg_shop__events "
            f"WHERE batch_day = DATE '{day.isoformat()}' GROUP BY ALL"
        )
        out["batch_events_counted"] = round(time.perf_counter() - began, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-offset", type=int, default=24000)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the layers of an earlier run of this size"
    )
    args = parser.parse_args()
    settings = bench_settings("reconcile", args.port_offset)
    # a day's rows in one answer can take longer than the default 30 s on a busy machine
    serving = settings.serving.model_copy(update={"query_timeout_s": 1800.0})
    settings = settings.model_copy(update={"serving": serving})
    if not args.reuse:
        shutil.rmtree(settings.home / "data", ignore_errors=True)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    day = datetime.now(UTC).date() - timedelta(days=2)
    stack = Stack(settings)
    stack.up(["serving"], progress=lambda line: None)
    try:
        resources = Resources(settings)
        began = time.perf_counter()
        with resources.store() as store:
            if not args.reuse:
                fill_store(store, day, args.events)
            speed_events = store.query_rows("SELECT count() AS n FROM user_events_realtime")
        if not args.reuse:
            with resources.warehouse() as warehouse:
                fill_warehouse(warehouse, day, args.events)
            staging_views(settings, logs / "dbt-staging.log")
        setup_s = time.perf_counter() - began
        print(f"set-up {setup_s:.0f} s; speed events {speed_events[0]['n']:,}", flush=True)
        env = {**os.environ, **as_environment(settings)}
        argv = [sys.executable, "-m", "lambdapipe.cli", "reconcile", "--date", day.isoformat()]
        runs: list[dict[str, Any]] = []
        for n in range(args.runs):
            wall, sampler, stdout = measured([*argv, "--json"], env, logs / f"reconcile-{n}.log")
            document = json.loads(stdout)
            runs.append(
                {
                    "wall_s": round(wall, 2),
                    "cpu_s": round(sampler.cpu_seconds(), 1),
                    "peak_rss_mib": sampler.peak_rss_mib(),
                    "phases_s": document["seconds"],
                    "status": document["status"],
                    "attributed": document["attributed"],
                    "unexplained": sum(abs(r["unexplained"]) for r in document["rows"]),
                }
            )
            print(json.dumps(runs[-1]), flush=True)
        walls = [r["wall_s"] for r in runs]
        result = {
            "benchmark": "reconcile",
            "command": " ".join(["lambdapipe reconcile --date", day.isoformat(), "--json"]),
            "events": args.events,
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(),
            "setup_s": round(setup_s, 1),
            "wall_s": {
                "median": statistics.median(walls),
                "min": min(walls),
                "max": max(walls),
            },
            "runs": runs,
            "baseline_s": baseline(settings, day),
            "goal_s": 30,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        stack.down(["serving"], progress=lambda line: None)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"reconcile-{args.events}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
