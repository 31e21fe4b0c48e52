"""Memory of the whole demo: every process `lambdapipe demo` starts, sampled while it runs.

    uv run python bench/bench_demo.py [--minutes 2] [--rate 2000] [--port-offset 7000]

Runs `lambdapipe demo --stop` on a private stack (its own home and ports) and samples, once a
second, the proportional set size (PSS: shared pages split between the processes that map them)
of every process that did not exist before it started: the stack's services, the serving
process, the speed layer, the archiver, the batch run and the demo itself. The peak of the sum
is what the demo needs; the goal is under 8 GiB on this 24 GiB machine. Reported per phase, told
apart by the Spark JVMs running: the baseline, the stack's services alone before the first
Spark JVM (the speed layer's); the realtime half (the speed layer and the archiver); the batch
half (a third: the batch run). Results: JSON on stdout and in
bench/results/demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
GIB = 2**30

# what a JVM is, from its main class
JVM_KINDS = {
    "kafka.Kafka": "kafka",
    "ConnectDistributed": "connect",
    "apicurio": "registry",
    "s3proxy": "s3proxy",
    "SparkSubmit": "spark",
}


def kind(p: psutil.Process) -> str:
    """A readable name for one process of the demo."""
    try:
        cmd = " ".join(p.cmdline())
        name = p.name()
    except psutil.Error:
        return "gone"
    if name == "java":
        for needle, label in JVM_KINDS.items():
            if needle in cmd:
                return f"jvm:{label}"
        return "jvm:other"
    if name.startswith("postgres"):
        return "postgres"
    if "python" in name or name == "lambdapipe":
        for needle in ("serve", "speed", "archive", "demo", "pyspark"):
            if needle in cmd:
                return f"python:{needle}"
        return "python:other"
    return name


class Sampler(threading.Thread):
    """PSS of every process not in `before`, summed and per kind, every second."""

    def __init__(self, before: set[int], exclude: set[int]) -> None:
        super().__init__(daemon=True)
        self.before, self.exclude = before, exclude
        # (t, total, per kind, Spark JVMs running)
        self.samples: list[tuple[float, float, dict[str, float], int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        while not self.done.is_set():
            per: dict[str, float] = defaultdict(float)
            sparks = 0
            for p in psutil.process_iter():
                if p.pid in self.before or p.pid in self.exclude:
                    continue
                try:
                    pss = p.memory_full_info().pss
                except psutil.Error:
                    continue
                what = kind(p)
                per[what] += pss
                sparks += what == "jvm:spark"
            self.samples.append((time.monotonic() - began, sum(per.values()), dict(per), sparks))
            self.done.wait(1.0)


def mib(per_kind: dict[str, float]) -> dict[str, int]:
    """Per kind in MiB, without the short-lived helpers (a shell, a kernel worker) under 8 MiB."""
    return {k: round(v / 2**20) for k, v in sorted(per_kind.items()) if v >= 8 * 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=2_000.0)
    parser.add_argument("--port-offset", type=int, default=7000)
    args = parser.parse_args()

    home = REPO / ".lambdapipe" / "bench" / "demo"
    shutil.rmtree(home / "data", ignore_errors=True)  # a fresh stack's data: the first demo
    env = {
        **os.environ,
        "LAMBDAPIPE_HOME": str(home),
        "LAMBDAPIPE_LIB_HOME": str(REPO / ".lambdapipe" / "lib"),
        "LAMBDAPIPE_PORT_OFFSET": str(args.port_offset),
    }
    before = set(psutil.pids())
    sampler = Sampler(before, {os.getpid()})
    sampler.start()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / "demo.log"
    argv = [sys.executable, "-m", "lambdapipe.cli", "demo", "--minutes", str(args.minutes)]
    argv += ["--rate", str(args.rate), "--stop"]
    began = time.monotonic()
    with log.open("w") as out:
        demo = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - began
    sampler.done.set()
    sampler.join()
    if demo.returncode != 0 or not sampler.samples:
        sys.exit(f"the demo failed (exit {demo.returncode}): see {log}")

    # the phases, from the Spark JVMs running: none (the stack's services), the speed layer and
    # the archiver (realtime), a third (the batch run)
    def peak_of(sparks: set[int]) -> tuple[float, float, dict[str, float], int]:
        inside = [s for s in sampler.samples if s[3] in sparks] or [(0.0, 0.0, {}, 0)]
        return max(inside, key=lambda s: s[1])

    first_spark = next((s[0] for s in sampler.samples if s[3]), wall)
    stack = [s for s in sampler.samples if s[0] < first_spark]
    stack_pss = max((s[1] for s in stack), default=0.0)
    _, realtime_pss, realtime_by, _ = peak_of({1, 2})
    _, batch_pss, batch_by, _ = peak_of({3, 4})
    peak = max(s[1] for s in sampler.samples)
    result = {
        "command": " ".join(argv[1:]),
        "wall_s": round(wall, 1),
        "first_spark_jvm_at_s": round(first_spark),
        "goal_gib": 8,
        "peak_pss_gib": round(peak / GIB, 2),
        "baseline_stack_only_pss_gib": round(stack_pss / GIB, 2),
        "realtime_peak_pss_gib": round(realtime_pss / GIB, 2),
        "batch_half_peak_pss_gib": round(batch_pss / GIB, 2),
        "realtime_peak_by_kind_mib": mib(realtime_by),
        "batch_half_peak_by_kind_mib": mib(batch_by),
        "load_avg": os.getloadavg(),
    }
    (RESULTS / "demo.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
