"""Insert throughput from Arrow into the realtime events table, all MVs attached, with a baseline.

Baseline, same run: the same batches into a copy of the table with no MVs attached. Batches are
speed-layer sized (a 2 s micro-batch at 50K events/s is ~100K rows) with event times inside
`--span-s` (the speed layer's watermark keeps late events within minutes; the synthetic default
of make_batch, 80 minutes, is a stress case), each inserted with its own dedup token. The two
targets alternate batch by batch so that load from other jobs on the machine hits both alike;
rates are medians over the batches (and overall means, for reference).
Usage: uv run python bench/bench_serving_insert.py [--rows 3000000] [--batch 100000] [--span-s 120]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from lambdapipe.serving.ddl import MATERIALIZED_VIEWS, TABLES
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.sample import make_batch

RESULTS = Path(__file__).parent / "results"
EVENTS = "user_events_realtime"


def timed_insert(store: EmbeddedStore, table: str, batch: pa.Table, token: str) -> float:
    started = time.perf_counter()
    store.insert_arrow(table, batch, token)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--span-s", type=float, default=120.0)
    args = parser.parse_args()
    half = args.span_s / 2
    batches = [
        make_batch(args.batch, seed=i, span_s=half, session_span_s=half).events
        for i in range(max(1, args.rows // args.batch))
    ]
    seconds: dict[str, list[float]] = {"baseline": [], "mvs": []}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp)) as store:
        store.create_schema(retention_days=30)
        store.execute(TABLES[0].ddl(30).replace(EVENTS, "events_no_views"))
        store.insert_arrow("events_no_views", batches[0], "bench:warmup")
        store.insert_arrow(EVENTS, batches[0], "bench:warmup")
        for index, batch in enumerate(batches):
            seconds["baseline"].append(
                timed_insert(store, "events_no_views", batch, f"bench:baseline:{index}")
            )
            seconds["mvs"].append(timed_insert(store, EVENTS, batch, f"bench:mvs:{index}"))
    rows = [b.num_rows for b in batches]
    rates = {
        name: [n / s for n, s in zip(rows, spent, strict=True)] for name, spent in seconds.items()
    }
    with_views = statistics.median(rates["mvs"])
    baseline = statistics.median(rates["baseline"])
    result = {
        "benchmark": "serving_insert",
        "rows": sum(rows),
        "batch_rows": args.batch,
        "event_time_span_s": args.span_s,
        "views_on_events": sorted(v.name for v in MATERIALIZED_VIEWS if v.source == EVENTS),
        "rows_per_s_with_all_mvs": round(with_views),
        "baseline_rows_per_s_no_mvs": round(baseline),
        "rows_per_s_with_all_mvs_overall": round(sum(rows) / sum(seconds["mvs"])),
        "baseline_rows_per_s_overall": round(sum(rows) / sum(seconds["baseline"])),
        "mv_cost_ratio": round(baseline / with_views, 2),
        "goal_rows_per_s": 500_000,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving_insert.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
