"""Dimensions and CDC benchmark, on a private local stack.

    uv run python bench/bench_dims_cdc.py [--users 100000] [--products 10000] [--changes 50000]

Measures, in one run:
- `dims load` rows/s (COPY + ON CONFLICT DO NOTHING), beside a baseline: a plain COPY of the
  same rows into an unindexed temporary table;
- the initial snapshot into Kafka (rows/s from `cdc register` to the last row in the topic);
- sustained CDC throughput: bulk tier updates committed in transactions of 1,000 rows, counted
  from the first commit to the last change in Kafka (changes/s), beside the 10,245 rows/s the
  original plan's reference measured through Debezium on 10 CPUs;
- change-to-Kafka latency of 100 single-row tier updates: Kafka append time minus the commit
  time Debezium reports (`source.ts_ms`), p50/p95.
Results: JSON on stdout and bench/results/dims_cdc.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from lambdapipe.generator.population import TIERS, users
from lambdapipe.ingest import cdc
from lambdapipe.ingest.db import connect_app
from lambdapipe.ingest.load import USER_COLUMNS, load_dimensions
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings, ensure_local_secrets
from lambdapipe.topics import quiet

REPO = Path(__file__).resolve().parents[1]
REFERENCE_CDC_ROWS_PER_S = 10_245


def private_settings() -> Settings:
    home = REPO / ".lambdapipe" / "bench-cdc"
    shutil.rmtree(home, ignore_errors=True)
    return Settings(
        _env_file=ensure_local_secrets(home),  # type: ignore[call-arg]
        home=home,
        lib_home=REPO / ".lambdapipe" / "lib",
        port_offset=27000,
    )


class TopicTail:
    """Consumes a CDC topic from its end (or start) and counts messages as they arrive."""

    def __init__(self, settings: Settings, table: str, from_start: bool = False) -> None:
        name = cdc.topic(settings, table)
        self.consumer = Consumer(
            quiet({"bootstrap.servers": settings.kafka.bootstrap, "group.id": str(uuid.uuid4())})
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            meta = self.consumer.list_topics(name, timeout=10).topics.get(name)
            if meta is not None and meta.error is None and meta.partitions:
                break
            time.sleep(0.2)
        parts = []
        for p in meta.partitions:  # type: ignore[union-attr]
            for _ in range(60):
                try:
                    low, high = self.consumer.get_watermark_offsets(TopicPartition(name, p), 10)
                    break
                except KafkaException:  # leaders of a new topic are still settling
                    time.sleep(0.5)
            parts.append(TopicPartition(name, p, low if from_start else high))
        self.consumer.assign(parts)

    def take(self, n: int, timeout_s: float = 300) -> list[tuple[dict[str, object], int]]:
        """The next n non-tombstone values with their Kafka timestamps (ms)."""
        out: list[tuple[dict[str, object], int]] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            for m in self.consumer.consume(10_000, timeout=0.2):
                if m.error() is None and m.value() is not None:
                    out.append((orjson.loads(m.value()), m.timestamp()[1]))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=50_000)
    args = parser.parse_args()
    settings = private_settings()
    stack = Stack(settings)
    results: dict[str, object] = {"reference_cdc_rows_per_s_10_cpus": REFERENCE_CDC_ROWS_PER_S}
    try:
        stack.up(progress=lambda line: print(line, file=sys.stderr))
        population = users(args.users, 42)  # generated before timing: the load is what we measure

        rows = [tuple(u.as_record()[c] for c in USER_COLUMNS) for u in population]
        began = time.perf_counter()
        with connect_app(settings) as conn:
            conn.execute(
                "CREATE TEMP TABLE plain_copy (user_id uuid, email text, first_name text,"
                " last_name text, date_of_birth date, registration_date date, country text,"
                " city text, tier text, is_active boolean, last_login timestamptz,"
                " updated_at timestamptz)"
            )
            with conn.cursor().copy(
                f"COPY plain_copy ({', '.join(USER_COLUMNS)}) FROM STDIN"
            ) as cp:
                for row in rows:
                    cp.write_row(row)
            conn.commit()
        results["baseline_plain_copy_rows_per_s"] = round(len(rows) / (time.perf_counter() - began))

        loaded = load_dimensions(settings, args.users, args.products, 42)
        results["dims_load_rows_per_s"] = {r.table: round(r.rows_per_s) for r in loaded}

        began = time.perf_counter()
        cdc.register(settings)
        snapshot = TopicTail(settings, "users", from_start=True).take(args.users)
        results["snapshot_rows_per_s"] = round(len(snapshot) / (time.perf_counter() - began))
        assert len(snapshot) == args.users, "snapshot incomplete"

        # sustained: bulk tier updates, 1,000 rows per transaction
        tail = TopicTail(settings, "users")
        ids = [u.user_id for u in population]
        began = time.perf_counter()
        with connect_app(settings) as conn:
            done = 0
            while done < args.changes:
                batch = ids[done % len(ids) : done % len(ids) + 1000]
                conn.execute(
                    "UPDATE users SET tier = CASE tier WHEN 'bronze' THEN 'silver' "
                    "WHEN 'silver' THEN 'gold' WHEN 'gold' THEN 'platinum' ELSE 'bronze' END "
                    "WHERE user_id = ANY(%s::uuid[])",
                    (batch,),
                )
                conn.commit()
                done += len(batch)
        committed_s = time.perf_counter() - began
        changes = tail.take(done)
        total_s = time.perf_counter() - began
        assert len(changes) == done, f"only {len(changes)} of {done} changes reached Kafka"
        results["cdc_sustained_changes_per_s"] = round(done / total_s)
        results["postgres_commit_changes_per_s"] = round(done / committed_s)

        # latency of single committed changes
        tail = TopicTail(settings, "users")
        with connect_app(settings, autocommit=True) as conn:
            for i in range(100):
                conn.execute(
                    "UPDATE users SET tier = %s WHERE user_id = %s", (TIERS[i % 4], ids[i])
                )
                time.sleep(0.02)
        latencies = [
            ts - int(value["source"]["ts_ms"])  # type: ignore[index]
            for value, ts in tail.take(100, timeout_s=60)
        ]
        latencies.sort()
        results["change_to_kafka_latency_ms"] = {
            "p50": statistics.median(latencies),
            "p95": latencies[int(len(latencies) * 0.95) - 1],
            "max": latencies[-1],
            "n": len(latencies),
        }
    finally:
        stack.down(purge=True, progress=lambda line: None)
        shutil.rmtree(settings.home, ignore_errors=True)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dims_cdc.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
