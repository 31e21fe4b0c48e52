"""The lake's archiver draining a backlog, against Spark reading the same topic into a noop sink.

Everything private (its own stack under .lambdapipe/bench/lake, ports shifted by
--port-offset; only PostgreSQL, S3Proxy and Kafka): the generator makes a sample of real
events, which are replayed into the events topic until the backlog holds `--records` (default
2M, original bytes, lz4). Then, each in its own process with the same driver memory:
  baseline  Spark's Kafka source -> the same raw-record projection -> `noop` (availableNow)
  archiver  `lambdapipe lake archive --until-idle` (Kafka -> Iceberg on S3Proxy, PostgreSQL catalog)
For each: wall time, the drain time (from the start of the queries, once the Spark session is
built, to the end of the baseline's query / to the archiver's last Iceberg commit), records/s,
CPU seconds (process tree) and peak RSS of each process (the Python driver and its JVM). Lake
freshness of the backlog is not meaningful (the records waited on purpose); files per partition
after `lake maintain` are recorded.
Usage: uv run python bench/bench_lake.py [--records 2000000] [--port-offset 27000]
       [--freshness-s 0] [--jfr archiver.jfr]
Results: bench/results/lake.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Producer

from lambdapipe.generator.run import plan, run
from lambdapipe.lake.status import commit_freshness
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings, as_environment
from lambdapipe.topics import ensure_topics, quiet
from measure import RESULTS, Sampler, bench_settings, measured

DRIVER_MEMORY = "1g"

BASELINE = """
import json, sys, time
from lambdapipe.lake.archive import Archiver, raw_records
from lambdapipe.lake.tables import raw_tables
from lambdapipe.settings import get_settings
from lambdapipe.spark import build_spark
settings = get_settings()
spark = build_spark(settings, "bench-lake-baseline", driver_memory=sys.argv[1])
events = next(t for t in raw_tables(settings) if t.name == "events")
source = Archiver(settings, spark).source(events)
began = time.monotonic()
query = (raw_records(source, events.event_time).writeStream.format("noop")
         .option("checkpointLocation", sys.argv[2]).trigger(availableNow=True).start())
query.awaitTermination()
reports = [json.loads(r.json()) for r in query._jsq.recentProgress()]
rows = sum(int(p["numInputRows"]) for p in reports)
print(json.dumps({"records": rows, "drain_s": time.monotonic() - began}))
spark.stop()
"""


def fill_backlog(settings: Settings, records: int, folder: Path) -> int:
    """Real generator events, replayed until the events topic holds `records`."""
    sample = folder / "sample.jsonl"
    run(plan(rate=0, duration=None, events=20_000, seed=42, sink=f"file:{sample}", start=None))
    values = [line for line in sample.read_bytes().splitlines() if line]
    producer = Producer(
        quiet(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "compression.type": "lz4",
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 500_000,
            }
        )
    )
    for i in range(records):
        value = values[i % len(values)]
        while True:
            try:
                producer.produce(settings.kafka.events_topic, value, key=value[13:49])
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    return records


def jfr_option(path: Path) -> str:
    """The JVM option that records the whole run with JFR's profiling settings into `path`."""
    return f"-XX:StartFlightRecording=settings=profile,filename={path.resolve()}"


def lake_drain(settings: Settings) -> dict[str, Any]:
    with Resources(settings).lake_catalog() as catalog:
        table = catalog.load_table(f"{settings.lake.namespace}.events")
    snapshots = [
        s for s in table.snapshots() if s.summary and s.summary.operation.value == "append"
    ]
    files = table.inspect.files()
    return {
        "commits": len(snapshots),
        "records": int(snapshots[-1].summary.additional_properties["total-records"]),
        "first_commit_ms": snapshots[0].timestamp_ms,
        "first_commit_records": int(snapshots[0].summary.additional_properties["added-records"]),
        "last_commit_ms": snapshots[-1].timestamp_ms,
        "files": files.num_rows,
        "partitions": len({str(p) for p in files["partition"].to_pylist()}),
    }


def measure_freshness(
    settings: Settings, env: dict[str, str], work: Path, rate: int, seconds: int
) -> dict[str, Any]:
    """Paced traffic while the archiver commits every 60 s (the default): Kafka timestamp to
    committed snapshot, per record, after a warm-up (the first commits include the start)."""
    if seconds <= 0:
        return {}
    python = sys.executable
    began_ms = time.time() * 1000
    with (work / "archive-freshness.log").open("w") as log:
        archiver = subprocess.Popen(
            [python, "-m", "lambdapipe.cli", "lake", "archive"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sampler = Sampler(psutil.Process(archiver.pid))
    sampler.start()
    subprocess.run(
        [python, "-m", "lambdapipe.cli", "generate", "--rate", str(rate),
         "--duration", f"{seconds}s", "--seed", "43"],
        env=env, check=True, capture_output=True, timeout=seconds + 300,
    )  # fmt: skip
    time.sleep(75)  # the last records' commit
    os.killpg(archiver.pid, signal.SIGTERM)
    archiver.wait(timeout=120)
    sampler.done.set()
    with Resources(settings).lake_catalog() as catalog:
        table = catalog.load_table(f"{settings.lake.namespace}.events")
    # records that reached Kafka after the run's first commit: the archiver's start-up
    # (JVM, tables, the first batch of five queries) is not freshness
    firsts = [s.timestamp_ms for s in table.snapshots() if s.timestamp_ms > began_ms]
    if not firsts:
        return {"error": "no commit during the run"}
    ages = sorted(commit_freshness(table, since_ms=min(firsts)))
    if not ages:
        return {"error": "no records after the first commit"}
    return {
        "rate_events_per_s": rate,
        "traffic_s": seconds,
        "commit_interval": settings.lake.commit_interval,
        "records_measured": len(ages),
        "p50_s": round(ages[len(ages) // 2], 1),
        "p95_s": round(ages[int(len(ages) * 0.95)], 1),
        "max_s": round(ages[-1], 1),
        "archiver_cpu_cores": round(sampler.cpu_seconds() / (seconds + 75), 2),
        "archiver_peak_rss_mib": {k: round(v) for k, v in sampler.peak.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--port-offset", type=int, default=27000)
    parser.add_argument("--keep", action="store_true", help="leave the stack up")
    parser.add_argument("--rate", type=int, default=1000, help="events/s for the freshness run")
    parser.add_argument("--freshness-s", type=int, default=360, help="0: no freshness run")
    parser.add_argument(
        "--jfr", type=Path, help="a Java Flight Recording (profile) of the archiver's JVM to here"
    )
    args = parser.parse_args()
    settings = bench_settings("lake", args.port_offset)
    shutil.rmtree(settings.home / "data", ignore_errors=True)
    stack = Stack(settings)
    stack.up(["postgres", "s3proxy", "kafka"], progress=lambda line: None)
    work = settings.home / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {
        **os.environ,
        **as_environment(settings),
        "LAMBDAPIPE_LAKE__DRIVER_MEMORY": DRIVER_MEMORY,
        "LAMBDAPIPE_LAKE__METRICS_PORT": "0",
    }
    try:
        ensure_topics(settings)
        began = time.monotonic()
        produced = fill_backlog(settings, args.records, work)
        fill_s = time.monotonic() - began
        print(f"backlog: {produced:,} records in {fill_s:.0f} s", flush=True)

        python = sys.executable
        loads = {"baseline": round(os.getloadavg()[0], 1)}
        base_wall, base_sampler, out = measured(
            [python, "-c", BASELINE, DRIVER_MEMORY, str(work / "noop-checkpoint")],
            env,
            work / "baseline.log",
        )
        baseline = json.loads(out.strip().splitlines()[-1])
        print(f"baseline: {baseline}", flush=True)

        started_ms = time.time() * 1000
        loads["archiver"] = round(os.getloadavg()[0], 1)
        lake_wall, lake_sampler, out = measured(
            [
                python,
                "-m",
                "lambdapipe.cli",
                "lake",
                "archive",
                "--until-idle",
                "5",
                "--commit-interval",
                "10s",
                "--json",
            ],
            env if args.jfr is None else {**env, "JAVA_TOOL_OPTIONS": jfr_option(args.jfr)},
            work / "archive.log",
        )
        print(
            f"archiver: {lake_wall:.1f} s wall, {lake_sampler.cpu_seconds():.0f} CPU s", flush=True
        )
        drain = lake_drain(settings)
        assert drain["records"] == produced, drain
        started_at = json.loads(out.strip().splitlines()[-1])["queries_started_at"]
        # as the baseline's: from the queries' start (the Spark session built) to the last commit
        drain_s = drain["last_commit_ms"] / 1000 - started_at
        steady_s = (drain["last_commit_ms"] - drain["first_commit_ms"]) / 1000
        subprocess.run(
            [python, "-m", "lambdapipe.cli", "lake", "maintain"],
            env=env,
            check=True,
            capture_output=True,
            timeout=1800,
        )
        after = lake_drain(settings)
        loads["end"] = round(os.getloadavg()[0], 1)
        freshness = measure_freshness(settings, env, work, args.rate, args.freshness_s)
        result = {
            "when": datetime.now(UTC).isoformat(),
            # 1-minute load average as each measured step began (2 shared cores)
            "load_avg_1m": loads,
            "records": produced,
            "backlog_fill_s": round(fill_s, 1),
            "baseline_noop": {
                "wall_s": round(base_wall, 1),
                "drain_s": round(baseline["drain_s"], 1),
                "records_per_s": round(produced / baseline["drain_s"]),
                "cpu_s": round(base_sampler.cpu_seconds(), 1),
                "peak_rss_mib": {k: round(v) for k, v in base_sampler.peak.items()},
            },
            "archiver": {
                "wall_s": round(lake_wall, 1),
                "session_start_s": round(started_at - started_ms / 1000, 1),
                "drain_s": round(drain_s, 1),
                "records_per_s": round(produced / drain_s),
                "first_commit_after_queries_start_s": round(
                    drain["first_commit_ms"] / 1000 - started_at, 1
                ),
                "steady_records_per_s_first_to_last_commit": round(
                    (produced - drain["first_commit_records"]) / steady_s
                )
                if steady_s > 0
                else None,
                "records_per_s_wall": round(produced / lake_wall),
                "commits": drain["commits"],
                "cpu_s": round(lake_sampler.cpu_seconds(), 1),
                "peak_rss_mib": {k: round(v) for k, v in lake_sampler.peak.items()},
                "files_before_maintain": drain["files"],
                "files_after_maintain": after["files"],
                "partitions": after["partitions"],
            },
            "freshness": freshness,
            "note": "2 shared cores: other work on the machine shows up in every figure",
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "lake.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            stack.down(purge=True, progress=lambda line: None)


if __name__ == "__main__":
    main()
