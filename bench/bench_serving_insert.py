"""Insert throughput from Arrow into the realtime events table, all MVs attached, with a baseline.

Baseline, same run: the same batches into a copy of the table with no MVs attached.
Usage: uv run python bench/bench_serving_insert.py [--rows 2000000] [--batch 250000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lambdapipe.serving.ddl import TABLES
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.sample import make_batch

RESULTS = Path(__file__).parent / "results"


def rate(store: EmbeddedStore, table: str, batches: list, tag: str) -> float:
    started = time.perf_counter()
    for index, batch in enumerate(batches):
        store.insert_arrow(table, batch, f"bench:{tag}:{index}")
    rows = sum(b.num_rows for b in batches)
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=250_000)
    args = parser.parse_args()
    batches = [
        make_batch(args.batch, seed=i).events for i in range(max(1, args.rows // args.batch))
    ]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp)) as store:
        store.create_schema(retention_days=30)
        bare = TABLES[0].ddl(30).replace("user_events_realtime", "events_no_views")
        store.execute(bare)
        rate(store, "events_no_views", batches[:1], "warmup")
        baseline = rate(store, "events_no_views", batches, "baseline")
        with_views = rate(store, "user_events_realtime", batches, "mvs")
    result = {
        "benchmark": "serving_insert",
        "rows": sum(b.num_rows for b in batches),
        "batch_rows": args.batch,
        "rows_per_s_with_all_mvs": round(with_views),
        "baseline_rows_per_s_no_mvs": round(baseline),
        "mv_cost_ratio": round(baseline / with_views, 2),
        "goal_rows_per_s": 500_000,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving_insert.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
