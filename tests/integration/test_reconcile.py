"""A deliberately broken batch: the speed layer holds a day of generated traffic, the batch
layer the same traffic with one Kafka partition's records hidden. `lambdapipe reconcile` must
exit 1 naming the missing data of the day with its numbers, store the failed run in both
results tables, and the serve process's `/metrics/reconcile` must raise the alert gauge.

Cheap on purpose (no Kafka, no Spark; docs/reconcile.md, Tests): the generator writes the
traffic to a file and each record gets the partition the producer's partitioner gives its key
(librdkafka's default for keyed records: CRC32 of user_id). The speed side goes into the real
store through a real `lambdapipe serve` process's HTTP insert path, as the speed layer's writer
sends it; the batch side into the warehouse's RAW through `load_raw`, then the real
`lambdapipe warehouse build` (dbt). The realtime tables carry no Kafka coordinates, so the
finding names what is missing by count, not by partition and offsets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lambdapipe.contracts.clickhouse import enriched_columns
from lambdapipe.generator.population import products, users
from lambdapipe.resources import Resources
from lambdapipe.serving.http import HttpStore
from lambdapipe.settings import Settings, as_environment
from lambdapipe.warehouse.raw import arrow_schema
from tests.stacks import serve_alone
from tests.warehouse_sample import COUNTS, session_key

pytestmark = pytest.mark.integration

USERS, PRODUCTS, SEED, EVENTS = 200, 40, 31, 3_000
# two days ago: inside the realtime tables' retention and the gauges' last 7 days
DAY = datetime.now(UTC).date() - timedelta(days=2)
HIDDEN_PARTITION = 0
MONEY = frozenset({"unit_price", "discount_amount", "tax_amount", "total_amount"})


def parse(stamp: str) -> datetime:
    """A UTC instant without its zone, as RAW holds instants."""
    return datetime.fromisoformat(stamp).astimezone(UTC).replace(tzinfo=None)


@dataclass
class Traffic:
    """Generated records of DAY and the morning after, with their Kafka coordinates."""

    events: list[dict[str, Any]]
    transactions: list[dict[str, Any]]

    def hidden(self, table: str) -> list[dict[str, Any]]:
        rows = self.events if table == "events" else self.transactions
        return [r for r in rows if r["partition"] == HIDDEN_PARTITION]


def generate(settings: Settings, folder: Path) -> Traffic:
    """30 h of traffic from DAY's midnight (the speed layer passes the day's end and its
    lateness), each record with its partition and offset in its topic."""
    path = folder / "traffic.jsonl"
    done = lambdapipe(
        settings, "generate", "--events", str(EVENTS), "--duration", "30h",
        "--start", f"{DAY.isoformat()}T00:00:00Z", "--seed", str(SEED), "--users", str(USERS),
        "--products", str(PRODUCTS), "--sink", f"file:{path}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    tiers = {u.user_id: u.tier for u in users(USERS, SEED)}
    partitions = settings.kafka.partitions
    out: dict[str, list[dict[str, Any]]] = {}
    for topic, file in (("events", path), ("transactions", folder / "traffic.transactions.jsonl")):
        offsets: defaultdict[int, int] = defaultdict(int)
        rows = out[topic] = []
        for line in file.read_bytes().splitlines():
            record = orjson.loads(line)
            partition = zlib.crc32(record["user_id"].encode()) % partitions
            record["timestamp"] = parse(record["timestamp"])
            for money in MONEY.intersection(record):
                record[money] = Decimal(record[money])
            record["user_tier"] = tiers.get(record["user_id"], "unknown")
            rows.append({**record, "partition": partition, "offset": offsets[partition]})
            offsets[partition] += 1
    return Traffic(out["events"], out["transactions"])


def sessions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each session id's session (the generator's sessions have no 30 min gap inside)."""
    by_id: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_id[event["session_id"]].append(event)
    out = []
    for session_id, rows in by_id.items():
        times = [r["timestamp"] for r in rows]
        kinds = [r["event_type"] for r in rows]
        out.append(
            {
                "session_id": session_id,
                "user_id": rows[0]["user_id"],
                "session_start": min(times),
                "session_end": max(times),
                "duration_s": int((max(times) - min(times)).total_seconds()),
                "event_count": len(rows),
                **{column: kinds.count(kind) for kind, column in COUNTS.items()},
                "user_tier": min(rows, key=lambda r: r["timestamp"])["user_tier"],
            }
        )
    return out


def columns(rows: list[dict[str, Any]], names: list[str]) -> pa.Table:
    return pa.Table.from_pylist([{n: r.get(n) for n in names} for r in rows])


def realtime_columns(entity: str) -> list[str]:
    return [name for name, _ in enriched_columns(entity)]


def write_speed(settings: Settings, traffic: Traffic) -> None:
    """Every record into the realtime tables, as the writer, through the serve process."""
    tables = {
        "user_events_realtime": columns(traffic.events, realtime_columns("user_event")),
        "transactions_realtime": columns(traffic.transactions, realtime_columns("transaction")),
        "user_sessions_realtime": pa.Table.from_pylist(sessions(traffic.events)),
    }
    with Resources(settings).store() as store:
        assert isinstance(store, HttpStore)
        for name, rows in tables.items():
            store.insert_arrow(name, rows, f"reconcile-test:{name}")


def write_batch(settings: Settings, traffic: Traffic) -> None:
    """The records of every partition but the hidden one into RAW, by batch day, then dbt."""
    starts = {s["session_id"]: s["session_start"] for s in sessions(traffic.events)}
    kept = {
        "user_events": [
            {**e, "session_key": session_key(e["session_id"], starts[e["session_id"]]),
             "session_start": starts[e["session_id"]]}
            for e in traffic.events if e["partition"] != HIDDEN_PARTITION
        ],
        "transactions": [t for t in traffic.transactions if t["partition"] != HIDDEN_PARTITION],
    }  # fmt: skip
    catalogue = [
        {**p.as_record(), "created_at": parse(p.created_at), "updated_at": parse(p.updated_at),
         "price": Decimal(p.price), "cost": Decimal(p.cost)}
        for p in products(PRODUCTS, SEED)
    ]  # fmt: skip
    with Resources(settings).warehouse() as warehouse:
        for day in (DAY, DAY + timedelta(days=1)):
            for table, rows in kept.items():
                names = arrow_schema(table).names
                of_day = [r for r in rows if r["timestamp"].date() == day]
                warehouse.load_raw(table, columns(of_day, names), "broken", None, day)
            names = arrow_schema("products").names
            warehouse.load_raw("products", columns(catalogue, names), "broken", None, day)
    built = lambdapipe(settings, "warehouse", "build")
    assert built.returncode == 0, (built.stdout + built.stderr).decode(errors="replace")[-4000:]


def hidden_of_day(traffic: Traffic) -> dict[str, int]:
    """What the hidden partition held of DAY: events, transactions, sessions started on DAY."""
    events = [e for e in traffic.hidden("events") if e["timestamp"].date() == DAY]
    started = [s for s in sessions(traffic.hidden("events")) if s["session_start"].date() == DAY]
    transactions = [t for t in traffic.hidden("transactions") if t["timestamp"].date() == DAY]
    return {"events": len(events), "transactions": len(transactions), "sessions": len(started)}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    yield from serve_alone(tmp_path_factory.mktemp("reconcile-home"))


def lambdapipe(settings: Settings, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI in its own process (DuckDB allows one process per warehouse file)."""
    return subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", *args],
        env={**os.environ, **as_environment(settings)},
        capture_output=True,
        timeout=600,
        check=False,
    )


def test_a_batch_missing_a_partition_fails_reconcile_naming_the_missing_data(
    serve: Settings, tmp_path: Path
) -> None:
    traffic = generate(serve, tmp_path)
    hidden = hidden_of_day(traffic)
    assert all(hidden.values()), hidden
    write_speed(serve, traffic)
    write_batch(serve, traffic)

    done = lambdapipe(serve, "reconcile", "--date", DAY.isoformat(), "--json")
    said = (done.stdout + done.stderr).decode(errors="replace")[-4000:]
    assert done.returncode == 1 and done.stdout.startswith(b"{"), said
    result = orjson.loads(done.stdout)
    assert result["status"] == "failed" and result["speed_complete"] and result["batch_loaded"]
    assert {m: kinds["?missing_in_batch"] for m, kinds in result["unexplained_units"].items()} == (
        hidden
    )
    missing = (
        f"missing data for {DAY} in the batch layer: {hidden['events']:,} events, "
        f"{hidden['transactions']:,} transactions, {hidden['sessions']:,} sessions accepted by "
        "the speed layer, in neither the batch layer's rows nor its dead letters"
    )
    assert missing in result["findings"], result["findings"]
    # nothing else is off: the whole difference is the hidden partition
    rows = result["rows"]
    assert sum(r["diff"] for r in rows if r["metric"] == "events") == hidden["events"]
    assert sum(r["unexplained"] for r in rows if r["metric"] == "events") == hidden["events"]
    assert all(r["unexplained"] == r["diff"] for r in rows)
    assert not any(result["attributed"].values())

    with Resources(serve).store(role="reader") as store:
        stored = store.query_rows(
            "SELECT status, count() AS n FROM reconciliation WHERE day = {day:Date} "
            "GROUP BY status",
            {"day": DAY},
        )
    assert [r["status"] for r in stored] == ["failed"]
    with Resources(serve).warehouse() as warehouse:
        statuses = warehouse.query_arrow(
            f"SELECT DISTINCT status FROM reconcile.reconciliation WHERE day = DATE '{DAY}'"
        )
    assert statuses.column("status").to_pylist() == ["failed"]
    scraped = httpx.get(f"{serve.serving.endpoint}/metrics/reconcile", timeout=30)
    assert scraped.status_code == 200
    failed = {
        sample.labels["day"]: sample.value
        for family in text_string_to_metric_families(scraped.text)
        if family.name == "lambdapipe_reconcile_failed"
        for sample in family.samples
    }
    assert failed == {DAY.isoformat(): 1.0}
