"""One day of traffic through the batch layer: lake -> curated -> RAW -> marts, with baselines.

Everything private (its own stack under .lambdapipe/bench/batch, ports shifted by
--port-offset; PostgreSQL, S3Proxy, Kafka and Connect). Set-up, timed but not the goal: a
population in PostgreSQL with Debezium CDC into Kafka (the tiers' history), yesterday's traffic
(`--events`, 24 h of event time, a few faults the batch must handle) into Kafka flat out, a
little tier churn, then `lambdapipe lake archive --until-idle` into the raw Iceberg tables.
Measured, each in its own process with the same driver memory:
  batch     `lambdapipe batch run --date D --json` (curated Iceberg, RAW in DuckDB, dbt build)
  spark     Spark reads raw.events once: rows and value bytes by day of the lake's event time
  duckdb    DuckDB aggregates the same raw.events data files once (pyiceberg's Arrow batches)
  floor     the least work of any exact Spark batch of the day: the day's raw events parsed
            with the events' schema (`from_json`), exact `dropDuplicates` on event_id, the
            30-minute session window, into `noop` (no validation, enrichment or writes)
For each: wall, CPU seconds (process tree), peak RSS per process kind; for the batch its phases.
Then a dashboard's queries on the marts (funnel, tiers, top products, daily KPIs, sessions),
each `--repeats` times after a warm-up, p50/p95/max, beside `SELECT 1` on the same connection.
Checks: the day is conserved, and the marts' events and transactions equal the curated ones.
`--only floor` (or any comma-separated steps, run in that order) measures a part; with `--keep`
and then `--reuse` the set-up is done once.
Usage: uv run python bench/bench_batch.py [--events 10000000] [--port-offset 14000] [--keep]
       [--reuse] [--only batch,spark,duckdb,floor]
Results: bench/results/batch.json (a part: batch-<steps>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

from lambdapipe.batch.job import BATCH_SHUFFLE_PARTITIONS
from lambdapipe.ingest import cdc
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.lake.offsets import KafkaOffsets
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings, as_environment
from lambdapipe.topics import ensure_topics
from measure import RESULTS, Sampler, bench_settings, measured

DRIVER_MEMORY = "4g"  # measured at 10M; 2g ran out of heap before the disk-only cache
FAULTS = "duplicate=0.01,late=0.005:2h,out_of_order=0.01,malformed=0.001,unknown_user=0.002"

SPARK_BASELINE = """
import json, sys, time
from pyspark.sql import functions as F
from lambdapipe.settings import get_settings
from lambdapipe.spark import build_spark
settings = get_settings()
spark = build_spark(settings, "bench-batch-baseline", lake=True, driver_memory=sys.argv[1])
began = time.monotonic()
lake = settings.lake
rows = (spark.table(f"{lake.catalog}.{lake.namespace}.events")
        .groupBy(F.to_date("event_time").alias("day"))
        .agg(F.count(F.lit(1)).alias("rows"), F.sum(F.length("value")).alias("value_bytes"))
        .collect())
scan_s = time.monotonic() - began
print(json.dumps({"scan_s": scan_s, "rows": sum(r["rows"] for r in rows),
                  "value_bytes": sum(r["value_bytes"] for r in rows)}))
spark.stop()
"""

# The least work any exact Spark batch of the day must do: read the day's raw events, parse
# them with the events' schema, drop repeats of event_id exactly, sessionize with the 30-minute
# gap (the batch's own `sessionize`); no validation, no enrichment, no writes (`noop`).
SPARK_FLOOR = """
import json, sys, time
from datetime import date, datetime, timedelta, UTC
from pyspark.sql import Observation
from pyspark.sql import functions as F
from lambdapipe.batch.window import DEFAULT_LOOKBACK_DAYS
from lambdapipe.contracts.spark import spark_schema
from lambdapipe.settings import get_settings
from lambdapipe.spark import build_spark
from lambdapipe.speed.sessionize import sessionize
settings = get_settings()
spark = build_spark(settings, "bench-batch-floor", lake=True, driver_memory=sys.argv[1])
spark.conf.set("spark.sql.adaptive.enabled", "true")
spark.conf.set("spark.sql.shuffle.partitions", sys.argv[3])
day = date.fromisoformat(sys.argv[2])
start = datetime(day.year, day.month, day.day, tzinfo=UTC)
began = time.monotonic()
lake = settings.lake
arrived = F.col("kafka_date").between(
    F.lit(day - timedelta(days=1)), F.lit(day + timedelta(days=1 + DEFAULT_LOOKBACK_DAYS)))
of_day = (F.col("event_time") >= F.lit(start)) & (
    F.col("event_time") < F.lit(start + timedelta(days=1)))
raw = spark.table(f"{lake.catalog}.{lake.namespace}.events").where(arrived & of_day)
parsed = raw.select(F.from_json(F.col("value").cast("string"), spark_schema()).alias("e")).select(
    "e.*").withColumn("event_time", F.to_timestamp("timestamp")).withColumn(
    "amount", F.col("amount").cast("decimal(10,2)"))
unique = parsed.dropDuplicates(["event_id"])
sessions = sessionize(unique, timedelta(seconds=settings.speed.session_gap_s))
seen = Observation("floor")  # counted on the way, in the same pass
sessions.observe(seen, F.count(F.lit(1)).alias("sessions"),
                 F.sum("event_count").alias("events")).write.format("noop").mode(
    "overwrite").save()
floor_s = time.monotonic() - began
print(json.dumps({"floor_s": floor_s, **seen.get}))
spark.stop()
"""

DUCKDB_BASELINE = """
import json, time
import duckdb
from lambdapipe.resources import Resources
from lambdapipe.settings import get_settings
settings = get_settings()
began = time.monotonic()
with Resources(settings).lake_catalog() as catalog:
    table = catalog.load_table(f"{settings.lake.namespace}.events")
batches = table.scan(selected_fields=("event_time", "value")).to_arrow_batch_reader()
rows, value_bytes = duckdb.sql(
    "select sum(n), sum(b) from (select count(*) n, sum(octet_length(value)) b "
    "from batches group by event_time::date)"
).fetchall()[0]
print(json.dumps({"scan_s": time.monotonic() - began, "rows": int(rows),
                  "value_bytes": int(value_bytes)}))
"""


def topic_records(settings: Settings, topic: str) -> int:
    """Records in `topic` (0 while it does not exist)."""
    offsets = KafkaOffsets(settings)
    try:
        return sum(high - low for low, high in offsets.watermarks(topic).values())
    finally:
        offsets.close()


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(1)


def cli(env: dict[str, str], log: Path, *args: str) -> tuple[float, str]:
    """A `lambdapipe` command, stderr to `log`; wall seconds and stdout."""
    began = time.monotonic()
    with log.open("w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "lambdapipe.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=7200,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"lambdapipe {' '.join(args[:2])} failed; see {log}")
    return time.monotonic() - began, done.stdout


def last_json(out: str) -> dict[str, Any]:
    """The JSON document at the end of stdout."""
    start = 0 if out.startswith("{") else out.index("\n{") + 1
    parsed: dict[str, Any] = json.loads(out[start:])
    return parsed


def set_up(
    settings: Settings, env: dict[str, str], work: Path, day: date, args: argparse.Namespace
) -> dict[str, Any]:
    """Population, CDC, the day's traffic in Kafka, and the lake archived from it."""
    figures: dict[str, Any] = {}
    began = time.monotonic()
    ensure_topics(settings)
    load_dimensions(settings, args.users, args.products, args.seed)
    cdc.register(settings)
    users_topic = cdc.topic(settings, "users")
    wait_for(lambda: topic_records(settings, users_topic) >= args.users, 300, "users snapshot")
    figures["dimensions_cdc_s"] = round(time.monotonic() - began, 1)
    figures["generate_s"], _ = cli(
        env, work / "generate.log", "generate", "--events", str(args.events), "--rate", "0",
        "--duration", "24h", "--start", f"{day.isoformat()}T00:00:00Z",
        "--users", str(args.users), "--products", str(args.products), "--seed", str(args.seed),
        "--faults", FAULTS, "--workers", "2",
    )  # fmt: skip
    before = topic_records(settings, users_topic)
    cli(env, work / "churn.log", "dims", "churn", "--changes", "200", "--rate", "0")
    wait_for(lambda: topic_records(settings, users_topic) > before, 120, "the churn in Kafka")
    time.sleep(5)  # Debezium publishes the last changes
    figures["kafka_records"] = {
        t: topic_records(settings, t)
        for t in (settings.kafka.events_topic, settings.kafka.transactions_topic)
    }
    print(f"set-up: traffic in Kafka {figures['kafka_records']}", flush=True)
    wall, out = cli(
        env, work / "archive.log", "lake", "archive", "--until-idle", "5",
        "--commit-interval", "30s", "--json",
    )  # fmt: skip
    figures["archive_s"] = round(wall, 1)
    figures["archive"] = last_json(out)
    figures["generate_s"] = round(figures["generate_s"], 1)
    return figures


def peaks_by_step(sampler: Sampler, log: Path) -> dict[str, dict[str, int]]:
    """Peak RSS of each process kind during each step the batch logged (`[HH:MM:SS] step`)."""
    steps: list[tuple[float, str]] = []
    clock = ""
    for line in log.read_text().splitlines():
        match = re.match(r"^(\[\d\d:\d\d:\d\d\]| {10}) (.+?)\s+cli\.py:\d+$", line)
        if match is None:
            continue
        clock = match.group(1).strip("[]").strip() or clock
        moment = datetime.combine(datetime.now(UTC).date(), dt_time.fromisoformat(clock), UTC)
        steps.append((moment.timestamp(), match.group(2).split(": ", 1)[-1]))
    peaks: dict[str, dict[str, int]] = {}
    for at, kind, rss in sampler.timeline:
        # the step that began last before the sample (whole seconds in the log)
        current = [name for began, name in steps if began <= at]
        step = current[-1] if current else "start"
        peak = peaks.setdefault(step, {})
        peak[kind] = max(peak.get(kind, 0), round(rss))
    return peaks


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def dashboard(day: date, marts: str) -> dict[str, str]:
    """A dashboard's worth of mart queries for `day`."""
    d, week_ago = f"DATE '{day.isoformat()}'", f"DATE '{(day - timedelta(days=6)).isoformat()}'"
    return {
        "select_1": "SELECT 1",
        "funnel": f"SELECT user_tier, sum(sessions) AS sessions, sum(reached_purchase) AS bought "
        f"FROM {marts}.conversion_funnel WHERE session_date = {d} GROUP BY user_tier",
        "tiers": f"SELECT * FROM {marts}.tier_behaviour WHERE activity_date = {d} "
        "ORDER BY revenue DESC",
        "top_products": "SELECT product_name, product_category, views, purchases, revenue "
        f"FROM {marts}.product_performance WHERE event_date = {d} "
        "ORDER BY revenue DESC LIMIT 10",
        "daily_kpis": f"SELECT * FROM {marts}.daily_metrics "
        f"WHERE metric_date BETWEEN {week_ago} AND {d} ORDER BY metric_date",
        "sessions": "SELECT count(*) AS sessions, avg(duration_s) AS avg_s, "
        f"count_if(converted) AS converted FROM {marts}.user_sessions WHERE session_date = {d}",
    }


def query_marts(settings: Settings, day: date, repeats: int) -> tuple[dict[str, Any], Any]:
    """Latency of each dashboard query; and the day's row of daily_metrics for the checks."""
    with Resources(settings).warehouse() as warehouse:
        found = warehouse.query_arrow(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'daily_metrics'"
        )
        marts = found.column(0)[0].as_py()
        latencies = {}
        for name, sql in dashboard(day, marts).items():
            warehouse.query_arrow(sql)  # warm-up
            runs = []
            for _ in range(repeats):
                began = time.perf_counter()
                warehouse.query_arrow(sql)
                runs.append(time.perf_counter() - began)
            latencies[name] = percentiles(runs)
        kpis = warehouse.query_arrow(
            f"SELECT events, transactions FROM {marts}.daily_metrics "
            f"WHERE metric_date = DATE '{day.isoformat()}'"
        ).to_pylist()
    return latencies, kpis[0] if kpis else {}


# each measured step and its key in the results
STEP_KEYS = {
    "batch": "batch",
    "spark": "baseline_spark_scan",
    "duckdb": "baseline_duckdb_scan",
    "floor": "baseline_spark_floor",
}
STEPS = tuple(STEP_KEYS)


def measure_batch(
    python: str, env: dict[str, str], work: Path, day: date, driver_memory: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`lambdapipe batch run` of the day: its figures, and the day's summary for the checks."""
    wall, sampler, out = measured(
        [python, "-m", "lambdapipe.cli", "batch", "run", "--date", day.isoformat(),
         "--driver-memory", driver_memory, "--json"],
        env, work / "batch.log",
    )  # fmt: skip
    summary = last_json(out)
    today: dict[str, Any] = summary["days"][0]
    batch = {
        "wall_s": round(wall, 1),
        "raw_records": today["raw_records"],
        "records_per_s": round(today["raw_records"] / wall),
        "phases_s": summary.get("phases_s", {}),
        "jvm_and_session_s": round(wall - sum(summary.get("phases_s", {}).values()), 1),
        "cpu_s": round(sampler.cpu_seconds(), 1),
        "cpu_us_per_record": round(sampler.cpu_seconds() / today["raw_records"] * 1e6, 1),
        "peak_rss_mib": sampler.peak_rss_mib(),
        "peak_rss_mib_by_step": peaks_by_step(sampler, work / "batch.log"),
        "rows": today["rows"],
        "dead_letters": today["dead_letters"],
        "duplicates": today["duplicates"],
        "conserved": today["conserved"],
        "raw_loaded": summary["raw_loaded"],
        "dbt_success": summary["dbt"]["success"],
        "dbt_nodes": len(summary["dbt"]["nodes"]),
    }
    return batch, today


def measure_spark_scan(python: str, env: dict[str, str], work: Path, memory: str) -> dict[str, Any]:
    wall, sampler, out = measured(
        [python, "-c", SPARK_BASELINE, memory], env, work / "baseline.log"
    )
    scan = json.loads(out.strip().splitlines()[-1])
    return {
        "wall_s": round(wall, 1),
        "scan_s": round(scan["scan_s"], 1),
        "raw_events": scan["rows"],
        "value_mib": round(scan["value_bytes"] / 2**20),
        "records_per_s": round(scan["rows"] / scan["scan_s"]),
        "cpu_s": round(sampler.cpu_seconds(), 1),
        "peak_rss_mib": sampler.peak_rss_mib(),
    }


def measure_duckdb_scan(python: str, env: dict[str, str], work: Path) -> dict[str, Any]:
    wall, sampler, out = measured([python, "-c", DUCKDB_BASELINE], env, work / "duckdb.log")
    scan = json.loads(out.strip().splitlines()[-1])
    return {
        "wall_s": round(wall, 1),
        "scan_s": round(scan["scan_s"], 1),
        "raw_events": scan["rows"],
        "records_per_s": round(scan["rows"] / scan["scan_s"]),
        "cpu_s": round(sampler.cpu_seconds(), 1),
        "peak_rss_mib": sampler.peak_rss_mib(),
    }


def measure_floor(
    python: str, env: dict[str, str], work: Path, day: date, memory: str
) -> dict[str, Any]:
    """SPARK_FLOOR on the day; `floor_s` from the first read (the session built) to the end."""
    wall, sampler, out = measured(
        [python, "-c", SPARK_FLOOR, memory, day.isoformat(), str(BATCH_SHUFFLE_PARTITIONS)],
        env,
        work / "floor.log",
    )
    floor = json.loads(out.strip().splitlines()[-1])
    return {
        "wall_s": round(wall, 1),
        "floor_s": round(floor["floor_s"], 1),
        "events": floor["events"],
        "sessions": floor["sessions"],
        "events_per_s": round(floor["events"] / floor["floor_s"]),
        "cpu_s": round(sampler.cpu_seconds(), 1),
        "cpu_us_per_event": round(sampler.cpu_seconds() / floor["events"] * 1e6, 1),
        "peak_rss_mib": sampler.peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=50, help="runs of each mart query")
    parser.add_argument("--driver-memory", default=DRIVER_MEMORY)
    parser.add_argument("--port-offset", type=int, default=14000)
    parser.add_argument("--keep", action="store_true", help="leave the stack up")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the stack's data: skip the set-up (--keep'd)"
    )
    parser.add_argument(
        "--only",
        default=",".join(STEPS),
        help=f"measured steps, comma-separated, of {','.join(STEPS)} (the mart queries and the "
        "checks need batch); results of a part go to batch-<steps>.json",
    )
    args = parser.parse_args()
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown or not steps:
        parser.error(f"--only takes {','.join(STEPS)}; not {','.join(unknown) or 'nothing'}")
    settings = bench_settings("batch", args.port_offset)
    if not args.reuse:
        shutil.rmtree(settings.home / "data", ignore_errors=True)
    stack = Stack(settings)
    stack.up(["postgres", "s3proxy", "kafka", "connect"], progress=lambda line: None)
    work = settings.home / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **as_environment(settings),
        "LAMBDAPIPE_LAKE__DRIVER_MEMORY": args.driver_memory,
        "LAMBDAPIPE_LAKE__METRICS_PORT": "0",
    }
    setup_file = work / "set-up.json"
    try:
        if args.reuse and setup_file.exists():
            setup = json.loads(setup_file.read_text())
        else:
            day = datetime.now(UTC).date() - timedelta(days=1)
            setup = {"day": day.isoformat(), **set_up(settings, env, work, day, args)}
            setup_file.write_text(json.dumps(setup, indent=2))
        day = date.fromisoformat(setup["day"])
        print(f"set-up: {json.dumps(setup)}", flush=True)
        python = sys.executable
        result: dict[str, Any] = {
            "day": day.isoformat(),
            "events": args.events,
            "driver_memory": args.driver_memory,
            "set_up": setup,
            # 1-minute load average as each measured step began (2 shared cores)
            "load_avg_1m": {},
        }
        today: dict[str, Any] = {}
        for step in steps:
            result["load_avg_1m"][step] = round(os.getloadavg()[0], 1)
            if step == "batch":
                result["batch"], today = measure_batch(python, env, work, day, args.driver_memory)
            elif step == "spark":
                result["baseline_spark_scan"] = measure_spark_scan(
                    python, env, work, args.driver_memory
                )
            elif step == "duckdb":
                result["baseline_duckdb_scan"] = measure_duckdb_scan(python, env, work)
            else:
                result["baseline_spark_floor"] = measure_floor(
                    python, env, work, day, args.driver_memory
                )
            print(f"{step}: {json.dumps(result[STEP_KEYS[step]])}", flush=True)
        result["load_avg_1m"]["end"] = round(os.getloadavg()[0], 1)
        checks: dict[str, bool] = {}
        if today:
            latencies, kpis = query_marts(settings, day, args.repeats)
            result["mart_queries"] = {"repeats": args.repeats, **latencies}
            checks = {
                "conserved": today["conserved"],
                "marts_events_equal_curated": kpis.get("events") == today["rows"]["events"],
                "marts_transactions_equal_curated": kpis.get("transactions")
                == today["rows"]["transactions"],
            }
        if "baseline_spark_scan" in result and "baseline_duckdb_scan" in result:
            checks["baselines_read_the_same_rows"] = (
                result["baseline_spark_scan"]["raw_events"]
                == result["baseline_duckdb_scan"]["raw_events"]
            )
        result.update(
            when=datetime.now(UTC).isoformat(),
            checks=checks,
            note="2 shared cores: other work on the machine shows up in every figure",
        )
        RESULTS.mkdir(exist_ok=True)
        name = "batch" if set(steps) == set(STEPS) else "batch-" + "-".join(steps)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        if not all(checks.values()):
            raise SystemExit(f"checks failed: {checks}")
    finally:
        if not args.keep:
            stack.down(purge=True, progress=lambda line: None)


if __name__ == "__main__":
    main()
