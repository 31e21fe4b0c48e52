"""p50/p95 latency of every dashboard query over N events, with `SELECT count()` as baseline.

Usage: uv run python bench/bench_serving_queries.py [--events 10000000] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lambdapipe.serving import queries
from lambdapipe.serving.ddl import MATERIALIZED_VIEWS
from lambdapipe.serving.embedded import EmbeddedStore
from serving_sample import make_batch

RESULTS = Path(__file__).parent / "results"
CHUNK = 500_000


def latency(run: Callable[[], Any], runs: int) -> dict[str, float]:
    run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp)) as store:
        store.create_schema(retention_days=30)
        loaded = 0
        for index in range(max(1, args.events // CHUNK)):
            # Ten days of history, newest last, as a running shop would have.
            start = now - timedelta(days=10) + timedelta(hours=index * 240 * CHUNK / args.events)
            batch = make_batch(
                CHUNK, seed=index, start=start, span_s=86_400 * 10 * CHUNK / args.events
            )
            store.insert_arrow("user_events_realtime", batch.events, f"load:{index}:e")
            store.insert_arrow("transactions_realtime", batch.transactions, f"load:{index}:t")
            store.insert_arrow("user_sessions_realtime", batch.sessions, f"load:{index}:s")
            loaded += batch.events.num_rows
        # Steady state: background merges have caught up with the load.
        targets = dict.fromkeys(view.target for view in MATERIALIZED_VIEWS)
        for table in ("user_events_realtime", *targets):
            store.execute(f"OPTIMIZE TABLE {table} FINAL")
        today = now.date()
        week = today - timedelta(days=6)
        cases: dict[str, Callable[[], Any]] = {
            "baseline_count": lambda: store.query_rows("SELECT count() FROM user_events_realtime"),
            "funnel_today": lambda: queries.funnel(store, today, today),
            "funnel_7d": lambda: queries.funnel(store, week, today),
            "tiers_7d": lambda: queries.tier_performance(store, week, today),
            "top_products_7d": lambda: queries.top_products(store, week, today, "revenue", 10),
            "sessions_7d": lambda: queries.sessions(store, week, today, "device_type"),
            "revenue_7d_hourly": lambda: queries.revenue(store, week, today, "hour"),
            "freshness": lambda: queries.freshness(store),
            "activity": lambda: queries.activity(store, 10, 30),
        }
        results = {name: latency(run, args.runs) for name, run in cases.items()}
    result = {
        "benchmark": "serving_queries",
        "events": loaded,
        "runs": args.runs,
        "goal_p95_ms": 50,
        "queries": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving_queries.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
