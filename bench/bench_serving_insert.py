"""Insert throughput from Arrow into the realtime events table, all MVs attached, with a baseline.

Baseline, same run: the same batches into a copy of the table with no MVs attached. Batches are
shaped like the speed layer's: `--batch` rows (default: the speed layer's
`max_offsets_per_trigger`, the most one micro-batch reads), arriving as Spark's `toArrow()`
builds them, in record batches of `--chunk-rows` (Spark's `arrow.maxRecordsPerBatch`), with
event times inside `--span-s` (the speed layer's watermark keeps late events within minutes),
each inserted with its own dedup token. The two targets alternate batch by batch so that load
from other jobs on the machine hits both alike; rates are medians over the batches (and overall
means, for reference). `--sweep` repeats the measurement for other batch sizes, each in a fresh
store.
Usage: uv run python bench/bench_serving_insert.py [--rows 2000000] [--batch N] [--span-s 120]
       [--chunk-rows 10000] [--sweep 100000,500000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from lambdapipe.serving.ddl import MATERIALIZED_VIEWS, TABLES
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.settings import SpeedSettings
from serving_sample import make_batch

RESULTS = Path(__file__).parent / "results"
EVENTS = "user_events_realtime"


def timed_insert(store: EmbeddedStore, table: str, batch: pa.Table, token: str) -> float:
    started = time.perf_counter()
    store.insert_arrow(table, batch, token)
    return time.perf_counter() - started


def speed_layer_batches(
    rows: int, batch_rows: int, span_s: float, chunk_rows: int
) -> list[pa.Table]:
    """Batches of `batch_rows` events, chunked like the Arrow tables the speed layer sends."""
    half = span_s / 2
    batches = []
    for seed in range(max(1, rows // batch_rows)):
        events = make_batch(batch_rows, seed=seed, span_s=half, session_span_s=half).events
        batches.append(pa.Table.from_batches(events.to_batches(max_chunksize=chunk_rows)))
    return batches


def measure(batches: list[pa.Table]) -> dict[str, Any]:
    """Median and overall rows/s with all MVs and without (baseline), alternating by batch."""
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
        parts = store.query_rows(
            f"SELECT count() AS parts FROM system.parts WHERE table = '{EVENTS}' AND active"
        )[0]["parts"]
    rows = [b.num_rows for b in batches]
    rates = {
        name: [n / s for n, s in zip(rows, spent, strict=True)] for name, spent in seconds.items()
    }
    with_views = statistics.median(rates["mvs"])
    baseline = statistics.median(rates["baseline"])
    return {
        "batch_rows": rows[0],
        "batches": len(rows),
        "rows_per_s_with_all_mvs": round(with_views),
        "baseline_rows_per_s_no_mvs": round(baseline),
        "rows_per_s_with_all_mvs_overall": round(sum(rows) / sum(seconds["mvs"])),
        "baseline_rows_per_s_overall": round(sum(rows) / sum(seconds["baseline"])),
        "mv_cost_ratio": round(baseline / with_views, 2),
        "active_parts_after": int(parts),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=SpeedSettings().max_offsets_per_trigger)
    parser.add_argument("--span-s", type=float, default=120.0)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--sweep", default="100000,500000", help="more batch sizes, or ''")
    args = parser.parse_args()
    sizes = [args.batch, *(int(s) for s in args.sweep.split(",") if s)]
    runs = []
    for size in sizes:
        batches = speed_layer_batches(args.rows, size, args.span_s, args.chunk_rows)
        runs.append(measure(batches))
        print(json.dumps(runs[-1]), flush=True)
    result = {
        "benchmark": "serving_insert",
        "rows": runs[0]["batch_rows"] * runs[0]["batches"],
        "speed_layer_batch_rows": args.batch,
        "arrow_chunk_rows": args.chunk_rows,
        "event_time_span_s": args.span_s,
        "views_on_events": sorted(v.name for v in MATERIALIZED_VIEWS if v.source == EVENTS),
        **{k: v for k, v in runs[0].items() if k != "batch_rows"},
        "goal_rows_per_s": 500_000,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "sweep": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving_insert.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
