"""Speed layer: the highest paced generator rate sustained with bounded lag, and its freshness.

Everything local and private (its own stack under .lambdapipe/bench/speed, ports shifted by
--port-offset): Kafka, PostgreSQL + Debezium, `lambdapipe serve`, `lambdapipe speed run` (a
separate process) and the generator (paced, in this process, `--workers` processes). For each rate
in `--rates` the generator runs `--step-s` seconds; every second the bench samples the lag
(records produced - records accounted for by the job: rows + dead letters, from the store) and
the memory of each process; CPU per process comes from cumulative CPU times over the step
(cores used, CPU seconds per 1,000 records) and, summed over the processes and scaled to the
goal's rate, gives the cores the goal would need here. A rate is sustained when the lag at the
end of the step is under `--max-lag-s` seconds of traffic and did not grow over the step's
second half. Freshness
is event time to written (ingested_at) of the rows of the step, p50/p95, from the store.
Baseline measured in the same run: the generator alone into Kafka, flat out (what the producer
and the broker reach on this machine with nothing to process, and the cores they use for it).
Usage: uv run python bench/bench_speed.py [--rates 2000,5000,10000,20000] [--step-s 60]
Results: bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from lambdapipe.generator.run import plan, run
from lambdapipe.ingest import cdc
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.runtime.stack import Stack
from lambdapipe.serving.http import HttpStore
from lambdapipe.settings import Settings, ensure_local_secrets
from lambdapipe.topics import admin_client, quiet

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SEED, USERS, PRODUCTS = 42, 10_000, 1_000
GOAL_RATE = 50_000  # events/s, the goal


def tree(process: psutil.Process, exclude: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """A process and its descendants, without the subtrees rooted at the `exclude` pids."""
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    skipped: set[int] = set()
    for p in members:
        if p.pid in exclude and p.pid != process.pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                skipped.update(c.pid for c in [p, *p.children(recursive=True)])
    return [p for p in members if p.pid not in skipped]


def cpu_seconds(root: psutil.Process, exclude: frozenset[int] = frozenset()) -> float:
    """CPU seconds used so far by a process tree: live members plus the children they reaped."""
    total = 0.0
    for p in tree(root, exclude):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class Sampler:
    """CPU (cores, from cumulative CPU times) and peak RSS (MiB) per named process tree.

    Percentages from psutil's cpu_percent need the same Process object twice, and the trees'
    members (Spark's Python workers, the generator's workers) come and go: cumulative times
    at the start and the end of a step count every member, including the reaped ones.
    """

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        # the bench's own tree holds the job and serve processes: each is counted once
        self.roots = frozenset(p.pid for p in processes.values())
        self.began = time.monotonic()
        self.machine = psutil.cpu_times()
        self.start = {name: cpu_seconds(root, self.roots) for name, root in processes.items()}
        self.rss = dict.fromkeys(processes, 0.0)

    def sample(self) -> None:
        for name, root in self.processes.items():
            rss = 0.0
            for p in tree(root, self.roots):
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss += p.memory_info().rss / 2**20
            self.rss[name] = max(self.rss[name], rss)

    def summary(self, records: int) -> dict[str, Any]:
        """Cores used per process over the step, CPU seconds per 1,000 records, peak RSS."""
        elapsed = max(time.monotonic() - self.began, 1e-9)
        out: dict[str, Any] = {}
        for name, root in self.processes.items():
            used = cpu_seconds(root, self.roots) - self.start[name]
            out[name] = {
                "cores": round(used / elapsed, 2),
                "cpu_s_per_1k_records": round(1000 * used / max(records, 1), 4),
                "rss_mib_max": round(self.rss[name], 1),
            }
        now = psutil.cpu_times()
        busy = (sum(now) - now.idle - now.iowait) - (
            sum(self.machine) - self.machine.idle - self.machine.iowait
        )
        out["machine"] = {"cores_busy": round(busy / elapsed, 2), "cores": os.cpu_count()}
        return out


def produced(settings: Settings, topics: list[str]) -> int:
    consumer = Consumer(quiet({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "b"}))
    total = 0
    for topic in topics:
        for p in range(settings.kafka.partitions):
            total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
    consumer.close()
    return total


def accounted(store: HttpStore) -> int:
    row = store.query_rows(
        "SELECT (SELECT count() FROM user_events_realtime) + (SELECT count() FROM "
        "transactions_realtime) + (SELECT count() FROM dead_letters_realtime) AS n"
    )
    return int(row[0]["n"])


def freshness(store: HttpStore, since: datetime) -> dict[str, float]:
    row = store.query_rows(
        "SELECT quantiles(0.5, 0.95)(dateDiff('millisecond', timestamp, ingested_at)) AS q, "
        "count() AS n FROM user_events_realtime WHERE ingested_at >= {t:DateTime64(3)}",
        {"t": since},
    )[0]
    q = row["q"] or [0, 0]
    return {"p50_s": round(q[0] / 1000, 2), "p95_s": round(q[1] / 1000, 2), "rows": row["n"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="2000,5000,10000,20000")
    parser.add_argument("--step-s", type=float, default=60.0)
    parser.add_argument("--max-lag-s", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port-offset", type=int, default=33000)
    parser.add_argument("--keep", action="store_true", help="leave the bench stack up")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    home = REPO / ".lambdapipe" / "bench" / "speed"
    shutil.rmtree(home / "data", ignore_errors=True)
    settings = Settings(
        _env_file=ensure_local_secrets(home),  # type: ignore[call-arg]
        home=home,
        lib_home=REPO / ".lambdapipe" / "lib",
        port_offset=args.port_offset,
    )
    stack = Stack(settings)
    stack.up(progress=lambda line: None)
    # One seed per generator run: a seed fixes the population *and* the ids, so two runs with
    # one seed repeat event ids (which the job rightly drops as duplicates). Every run's
    # population is loaded, so enrichment finds all its users.
    run_seeds = range(SEED, SEED + len(rates) + 1)  # the warm-up, then each step
    for seed in run_seeds:
        load_dimensions(settings, USERS, PRODUCTS, seed)
    seeds = iter(run_seeds)
    cdc.register(settings)
    suffix = uuid.uuid4().hex[:6]
    topics = [f"bench-events-{suffix}", f"bench-transactions-{suffix}", f"bench-dlq-{suffix}"]
    # the baseline writes into topics no job reads
    idle_topics = [f"bench-idle-events-{suffix}", f"bench-idle-transactions-{suffix}"]
    admin = admin_client(settings)
    for f in admin.create_topics(
        [NewTopic(t, settings.kafka.partitions, 1) for t in topics + idle_topics]
    ).values():
        f.result(30)
    env = {
        **os.environ,
        "LAMBDAPIPE_HOME": str(home),
        "LAMBDAPIPE_LIB_HOME": str(settings.lib_dir),
        "LAMBDAPIPE_PORT_OFFSET": str(args.port_offset),
        "LAMBDAPIPE_KAFKA__EVENTS_TOPIC": topics[0],
        "LAMBDAPIPE_KAFKA__TRANSACTIONS_TOPIC": topics[1],
        "LAMBDAPIPE_KAFKA__DLQ_TOPIC": topics[2],
        "LAMBDAPIPE_SPEED__METRICS_PORT": "0",
    }
    command = [sys.executable, "-c", "from lambdapipe.cli import main; main()"]
    logs = home / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack.up(["serving"], progress=lambda line: None)  # supervised: ready when /health answers
    with (logs / "speed.log").open("ab") as log:
        job = subprocess.Popen(
            [*command, "speed", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    serving = settings.serving
    store = HttpStore(serving.store_url, serving.reader_user, serving.reader_password, timeout_s=60)
    pids = {s.name: s.pid for s in stack.status() if s.pid}
    kafka_pids = [pid for name, pid in pids.items() if name.startswith("kafka")]
    processes = {
        "speed job (python + JVM)": psutil.Process(job.pid),
        "serve (chdb)": psutil.Process(pids["serving"]),
        "generator (this process)": psutil.Process(os.getpid()),
    }
    if kafka_pids:
        processes["kafka"] = psutil.Process(kafka_pids[0])

    def generate(rate: float, seconds: float, into: list[str] = topics) -> dict[str, float]:
        config = plan(
            rate=rate,
            duration=None,
            events=int(rate * seconds) if rate else int(seconds),
            seed=SEED if into is idle_topics else next(seeds),
            sink="kafka",
            start=None,
            workers=args.workers,
            users=USERS,
            products=PRODUCTS,
        )
        config = replace(
            config,
            kafka={
                "bootstrap": settings.kafka.bootstrap,
                "events_topic": into[0],
                "transactions_topic": into[1],
            },
        )
        summary = run(config)
        return {"records": summary.records, "seconds": round(summary.seconds, 1)}

    # warm-up: the job's first batches (JIT, planning) are not part of any step
    generate(1000, 10)
    while accounted(store) < produced(settings, topics[:2]) - 100:
        time.sleep(1)

    # baseline, same run: the generator alone into Kafka (no job reads these topics)
    idle = Sampler(processes)
    alone = generate(0, 1_000_000, into=idle_topics)
    idle.sample()
    baseline = {
        **alone,
        "records_per_s": round(alone["records"] / max(alone["seconds"], 1e-9)),
        "processes": idle.summary(int(alone["records"])),
    }
    print(json.dumps({"baseline_generator_alone": baseline}), flush=True)

    steps: list[dict[str, Any]] = []
    try:
        for rate in rates:
            began = datetime.now(UTC)
            result: dict[str, Any] = {}
            thread = threading.Thread(
                target=lambda out=result, r=rate: out.update(generate(r, args.step_s))
            )
            sampler = Sampler(processes)
            lags: list[int] = []
            thread.start()
            while thread.is_alive():
                time.sleep(1)
                sampler.sample()
                lags.append(produced(settings, topics[:2]) - accounted(store))
            end_lag = lags[-1] if lags else 0
            half = lags[len(lags) // 2 :] or [0]
            sustained = end_lag <= rate * args.max_lag_s and half[-1] <= max(half[0], rate) * 1.5
            drained_at = time.monotonic()
            while produced(settings, topics[:2]) - accounted(store) > 0.001 * rate * args.step_s:
                if time.monotonic() - drained_at > 300:
                    break
                time.sleep(1)
            step = {
                "rate": rate,
                "generator": result,
                "achieved_rate": round(
                    result.get("records", 0) / max(result.get("seconds", 1), 1e-9)
                ),
                "lag_end_records": end_lag,
                "lag_max_records": max(lags or [0]),
                "drain_s": round(time.monotonic() - drained_at, 1),
                "sustained": bool(sustained),
                "freshness": freshness(store, began),
                "processes": sampler.summary(int(result.get("records", 0))),
            }
            used = step["processes"]
            costs = [v["cpu_s_per_1k_records"] for k, v in used.items() if k != "machine"]
            # every process's CPU per record, times the goal's rate: the cores the goal needs
            step["cores_needed_at_goal"] = round(sum(costs) * GOAL_RATE / 1000, 2)
            steps.append(step)
            print(json.dumps(step), flush=True)
            if not sustained:
                break
    finally:
        job.terminate()
        job.wait(60)
        stack.down(["serving"], progress=lambda line: None)
        store.close()
        if not args.keep:
            cdc.unregister(settings)
            stack.down(purge=True, progress=lambda line: None)
    best = max((s["rate"] for s in steps if s["sustained"]), default=0)
    report = {
        "command": "uv run python bench/bench_speed.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
        },
        "step_s": args.step_s,
        "max_lag_s": args.max_lag_s,
        "highest_sustained_rate": best,
        "goal_rate": GOAL_RATE,
        "baseline_generator_alone": baseline,
        "steps": steps,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"highest_sustained_rate": best}))


if __name__ == "__main__":
    main()
