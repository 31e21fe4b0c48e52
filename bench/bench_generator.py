"""Throughput of the generator beside a baseline of orjson-serializing prebuilt dicts.

Run: `uv run python bench/bench_generator.py [--events N] [--kafka [--bootstrap HOST:PORT]]`.
Prints JSON and writes it to bench/results/generator.json. The baseline and the file run share
this process and one core, so their ratio is meaningful across machines; both report wall-clock
and CPU-time rates (CPU time is the per-core figure on a busy machine). The Kafka run goes end to
end into a running local Kafka with acks=all and waits for every delivery report.
"""

from __future__ import annotations

import argparse
import io
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from lambdapipe.generator.run import RunConfig, plan, run

RESULTS = Path(__file__).parent / "results" / "generator.json"
START = "2026-03-02T00:00:00Z"


def baseline(events: int, sample: Path) -> dict[str, Any]:
    """orjson.dumps of prebuilt event dicts into an in-memory buffer: the serialization floor."""
    prebuilt = [orjson.loads(line) for line in sample.read_bytes().splitlines()[:100_000]]
    rounds = max(1, events // len(prebuilt))
    buffer = io.BytesIO()
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        lines = [orjson.dumps(event) for event in prebuilt]
        buffer.write(b"\n".join(lines))
        buffer.seek(0)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    n = rounds * len(prebuilt)
    return {
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds),
        "events_per_cpu_s": round(n / cpu),
    }


def generate(config: RunConfig) -> dict[str, Any]:
    """One generator run, measured."""
    summary = run(config)
    result: dict[str, Any] = {
        "events": summary.valid_events,
        "records": summary.records + summary.transactions,
        "bytes": summary.bytes_written,
        "seconds": round(summary.seconds, 3),
        "events_per_s": round(summary.rate),
        "delivery_errors": summary.delivery_errors,
    }
    if config.workers == 1:
        # With workers the work happens in other processes, so this process's CPU says nothing.
        result["events_per_cpu_s"] = round(summary.valid_events / summary.cpu_seconds)
    return result


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--kafka", action="store_true", help="also run into a local Kafka")
    parser.add_argument("--bootstrap", default=None, help="default: lambdapipe settings")
    parser.add_argument("--compression", default="lz4")
    parser.add_argument("--workers", type=int, default=2, help="workers of the Kafka run")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": platform.machine(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        config = plan(
            rate=0, duration=None, events=args.events, seed=1, sink=f"file:{path}", start=START
        )
        results["file_one_core"] = generate(config)
        results["baseline_orjson_prebuilt"] = baseline(args.events, path)
    # CPU time, not wall time: other work on a shared 2-core machine does not skew the ratio.
    results["file_vs_baseline_cpu"] = round(
        results["file_one_core"]["events_per_cpu_s"]
        / results["baseline_orjson_prebuilt"]["events_per_cpu_s"],
        3,
    )
    if args.kafka:
        from lambdapipe.settings import get_settings

        kafka = get_settings().kafka
        config = plan(
            rate=0,
            duration=None,
            events=args.events,
            seed=2,
            sink="kafka",
            start=START,
            workers=args.workers,
            compression=args.compression,
        )
        config = replace(
            config,
            kafka={
                "bootstrap": args.bootstrap or kafka.bootstrap,
                "events_topic": kafka.events_topic,
                "transactions_topic": kafka.transactions_topic,
            },
        )
        results["kafka_end_to_end"] = {
            **generate(config),
            "compression": args.compression,
            "workers": args.workers,
            "acks": "all",
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
