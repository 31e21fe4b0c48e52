"""Batch publication and merged queries: seconds per published day, and the p50/p95 of every
merged API question against the same question on the realtime layer alone (same run).

History: `--batch-days` days of `--events-per-day` events each, published day by day (as
curated rows) into the batch twins, the last of them ending the day before yesterday;
yesterday and today: `--realtime-events` events in the realtime tables. Merged answers read
the twins up to the watermark and the realtime rollups after it.

Usage: uv run python bench/bench_publish.py [--realtime-events 2000000] [--batch-days 10]
       [--events-per-day 1000000] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from bench_serving_queries import latency
from lambdapipe.serving import queries
from lambdapipe.serving.ddl import BATCH_TWINS, MATERIALIZED_VIEWS
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.publish import CuratedDay, publish_day
from serving_sample import make_batch

RESULTS = Path(__file__).parent / "results"
CHUNK = 500_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--realtime-events", type=int, default=2_000_000)
    parser.add_argument("--batch-days", type=int, default=10)
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    now = datetime.now(UTC)
    today = now.date()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp)) as store:
        store.create_schema(retention_days=30)
        chunks = max(1, args.realtime_events // CHUNK)
        start = datetime.combine(today - timedelta(days=1), clock(), UTC)
        span = (now - start).total_seconds() - 3600
        for index in range(chunks):
            batch = make_batch(
                CHUNK,
                seed=index,
                start=start + timedelta(seconds=index * span / chunks),
                span_s=span / chunks,
            )
            store.insert_arrow("user_events_realtime", batch.events, f"rt:{index}:e")
            store.insert_arrow("transactions_realtime", batch.transactions, f"rt:{index}:t")
            store.insert_arrow("user_sessions_realtime", batch.sessions, f"rt:{index}:s")
        publications = []
        for offset in range(args.batch_days + 1, 1, -1):
            day = today - timedelta(days=offset)
            batch = make_batch(
                args.events_per_day,
                seed=1000 + offset,
                start=datetime.combine(day, clock(), UTC),
                span_s=86_400 - 3_600,
            )
            rows = {
                "user_events_realtime": batch.events,
                "transactions_realtime": batch.transactions,
                "user_sessions_realtime": batch.sessions,
            }
            started = time.perf_counter()
            done = publish_day(store, CuratedDay(day, f"bench-{offset}", rows))
            seconds = time.perf_counter() - started
            publications.append(
                {
                    "day": day.isoformat(),
                    "events": batch.events.num_rows,
                    "seconds": round(seconds, 2),
                    "events_per_s": round(batch.events.num_rows / seconds),
                    "twin_rows": {t.name: done.rows[t.name] for t in BATCH_TWINS},
                }
            )
        targets = dict.fromkeys(view.target for view in MATERIALIZED_VIEWS)
        for table in (*targets, *(twin.name for twin in BATCH_TWINS)):
            store.execute(f"OPTIMIZE TABLE {table} FINAL")
        first = today - timedelta(days=args.batch_days + 1)
        week = today - timedelta(days=6)

        def questions(source: Any) -> dict[str, Callable[[], Any]]:
            return {
                "funnel_all": lambda: queries.funnel(store, first, today, source=source),
                "funnel_7d": lambda: queries.funnel(store, week, today, source=source),
                "tiers_all": lambda: queries.tier_performance(store, first, today, source),
                "top_products_all": lambda: queries.top_products(
                    store, first, today, "revenue", 10, source
                ),
                "sessions_all": lambda: queries.sessions(
                    store, first, today, "device_type", source=source
                ),
                "revenue_all_hourly": lambda: queries.revenue(store, first, today, "hour", source),
                "activity": lambda: queries.activity(store, 10, 30, source),
            }

        results: dict[str, dict[str, Any]] = {}
        realtime, merged = questions("realtime"), questions("merged")
        for name in merged:  # alternated, so both see the same machine
            results[name] = {
                "realtime_only": latency(realtime[name], args.runs),
                "merged": latency(merged[name], args.runs),
            }
    result = {
        "benchmark": "publish",
        "realtime_events": chunks * CHUNK,
        "batch_events": sum(p["events"] for p in publications),
        "runs": args.runs,
        "goal_p95_ms": 50,
        "publications": publications,
        "queries": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "publish.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
