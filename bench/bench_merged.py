"""Merged queries at issue 16's size: p50/p95/p99 of every dashboard question over 10M
realtime + 100M batch-published events, merged against realtime-only (the same-run baseline)
and batch-only.

A private `lambdapipe serve` (the stack's supervisor, its own home and ports) is filled through
its writer endpoint, as the pipeline fills it:
- realtime: `--realtime-events` events over the last `--realtime-days` days (today until half
  an hour ago) inserted into `user_events_realtime` with an INSERT ... SELECT FROM numbers()
  (the views build the rollups as they do for the speed sink's inserts), then the sessions and
  transactions of those events into their realtime tables (their views likewise);
- batch: `--batch-days` days of `--events-per-day` events ending yesterday, each generated into
  the publication's staging tables and published with `serving.publish.publish_staged` (the
  twins built with the realtime views' SELECTs, swapped in per day), one publication per day.
Rows are `merged_sample`'s: sessions of ~10 events, 100K users, 10K named products.

Then every question over the API as the dashboard calls it (HTTP, bearer token), for each of
today / the last 7 days / the last 30 days and each source, runs alternated so all see the
same machine; then the serve process is stopped and the same SQL is timed in-process on the
same data directory (the engine's time alone, without HTTP and JSON).

Usage: uv run python bench/bench_merged.py [--realtime-events 10000000] [--batch-days 100]
       [--events-per-day 1000000] [--runs 40] [--port-offset 5000] [--keep]
Results: bench/results/merged.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psutil

import merged_sample as sample
from lambdapipe.resources import serving_data_dir
from lambdapipe.runtime.stack import Stack
from lambdapipe.serving import queries
from lambdapipe.serving.ddl import MATERIALIZED_VIEWS, STAGED_SOURCES
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.http import HttpStore
from lambdapipe.serving.publish import publish_staged
from lambdapipe.serving.store import ServingStore
from measure import RESULTS, Sampler, bench_settings

SOURCES = ("merged", "realtime", "batch")
# The demo's memory budget (docs: 8 GiB for the whole stack on one laptop).
DEMO_BUDGET_MIB = 8192


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    at = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 2)  # noqa: E731
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": at(0.95), "p99_ms": at(0.99)}


def day_start(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp())


def fill_realtime(store: ServingStore, events: int, days: int, now: datetime) -> dict[str, Any]:
    """`events` events spread evenly over the last `days` days up to now - 30 min, one
    INSERT ... SELECT per day, then that day's sessions and transactions."""
    end = int(now.timestamp()) - 1800
    first = now.date() - timedelta(days=days - 1)
    spans = [
        (d, day_start(d), min(day_start(d) + 86_400, end) - day_start(d))
        for d in (first + timedelta(days=i) for i in range(days))
    ]
    total_span = sum(span for _, _, span in spans)
    started, inserted = time.perf_counter(), 0
    for index, (day, start, span) in enumerate(spans):
        count = round(events * span / total_span) if index < days - 1 else events - inserted
        store.execute(sample.events_sql("user_events_realtime", index, start, span, count))
        of_day = f"toDate(timestamp) = '{day.isoformat()}'"
        store.execute(sample.sessions_sql("user_sessions_realtime", "user_events_realtime", of_day))
        store.execute(
            sample.transactions_sql("transactions_realtime", "user_events_realtime", of_day)
        )
        inserted += count
    return {"events": inserted, "days": days, "seconds": round(time.perf_counter() - started, 1)}


def fill_batch(store: ServingStore, days: int, per_day: int, today: date) -> dict[str, Any]:
    """`days` days of `per_day` events ending yesterday, each staged and published."""
    staging = STAGED_SOURCES
    seconds = []
    for offset in range(days, 0, -1):
        day = today - timedelta(days=offset)
        began = time.perf_counter()
        for table in staging.values():
            store.execute(f"TRUNCATE TABLE {table}")
        events = staging["user_events_realtime"]
        store.execute(sample.events_sql(events, 10_000 + offset, day_start(day), 86_400, per_day))
        store.execute(sample.sessions_sql(staging["user_sessions_realtime"], events))
        store.execute(sample.transactions_sql(staging["transactions_realtime"], events))
        done = publish_staged(store, day, f"bench-{day.isoformat()}")
        if done.rows["user_events"] != per_day:
            raise SystemExit(f"{day}: staged {done.rows['user_events']} events, not {per_day}")
        seconds.append(time.perf_counter() - began)
    return {
        "events": days * per_day,
        "days": days,
        "seconds": round(sum(seconds), 1),
        "seconds_per_day_p50": round(statistics.median(seconds), 2),
        "seconds_per_day_max": round(max(seconds), 2),
    }


def storage(store: ServingStore) -> list[dict[str, Any]]:
    """Rows and bytes on disk of every table that holds any (active parts)."""
    return store.query_rows(
        "SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes_on_disk, "
        "count() AS parts FROM system.parts WHERE active AND database = currentDatabase() "
        "GROUP BY table HAVING rows > 0 ORDER BY bytes_on_disk DESC"
    )


def questions(today: date) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each dashboard question per range: its API route and parameters."""
    ranges = {
        "today": today,
        "7d": today - timedelta(days=6),
        "30d": today - timedelta(days=29),
    }
    cases: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, start in ranges.items():
        days = {"start": start.isoformat(), "end": today.isoformat()}
        cases |= {
            f"funnel_{name}": ("/api/funnel", days),
            f"tiers_{name}": ("/api/tiers", days),
            f"sessions_{name}": ("/api/sessions", {**days, "group_by": "device_type"}),
            f"revenue_hourly_{name}": ("/api/revenue", {**days, "interval": "hour"}),
            f"top_products_{name}": ("/api/products/top", {**days, "limit": 10}),
        }
    # the dashboard's call: the last 30 minutes per minute; and the last day of minutes
    cases["activity_30min"] = ("/api/activity", {})
    cases["activity_1440min"] = ("/api/activity", {"minutes": 1440})
    return cases


def in_process(store: ServingStore, route: str, p: dict[str, Any], source: Any) -> Any:
    """The API route's query function, called on `store` directly."""
    day = date.fromisoformat
    if route == "/api/activity":
        return queries.activity(store, 10, int(p.get("minutes", 30)), source)
    start, end = day(p["start"]), day(p["end"])
    calls: dict[str, Callable[[], Any]] = {
        "/api/funnel": lambda: queries.funnel(store, start, end, source=source),
        "/api/tiers": lambda: queries.tier_performance(store, start, end, source),
        "/api/sessions": lambda: queries.sessions(store, start, end, "device_type", source=source),
        "/api/revenue": lambda: queries.revenue(store, start, end, "hour", source),
        "/api/products/top": lambda: queries.top_products(store, start, end, "revenue", 10, source),
    }
    return calls[route]()


def timed(run: Callable[[], Any], runs: int) -> dict[str, list[float]]:
    """`run(source)` for every source, alternated, `runs` times after one warm-up each."""
    times: dict[str, list[float]] = {s: [] for s in SOURCES}
    for s in SOURCES:
        run(s)
    for _ in range(runs):
        for s in SOURCES:
            began = time.perf_counter()
            run(s)
            times[s].append((time.perf_counter() - began) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--realtime-events", type=int, default=10_000_000)
    parser.add_argument("--realtime-days", type=int, default=10)
    parser.add_argument("--batch-days", type=int, default=100)
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("PIPE_TEST_PORT_OFFSET", "5000"))
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    settings = bench_settings("merged", args.port_offset)
    data_dir = serving_data_dir(settings)
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = Stack(settings)
    stack.up(["serving"], progress=lambda line: None)
    try:
        pid = next(s.pid for s in stack.status() if s.name == "serving" and s.pid)
        serve = psutil.Process(pid)
        sampler = Sampler(serve)
        sampler.start()
        now = datetime.now(UTC)
        today = now.date()
        serving = settings.serving
        # one INSERT ... SELECT writes a day of a million events: longer than a request's 30 s
        with HttpStore(
            serving.store_url, serving.writer_user, serving.writer_password, timeout_s=1800
        ) as store:
            store.execute(sample.products_sql("products_dim"))
            realtime = fill_realtime(store, args.realtime_events, args.realtime_days, now)
            print("realtime", realtime, flush=True)
            batch = fill_batch(store, args.batch_days, args.events_per_day, today)
            print("batch", batch, flush=True)
            # steady state: merges caught up (the twins' days are one part each already)
            began = time.perf_counter()
            for target in dict.fromkeys(view.target for view in MATERIALIZED_VIEWS):
                store.execute(f"OPTIMIZE TABLE {target} FINAL")
            optimize_s = round(time.perf_counter() - began, 1)
            tables = storage(store)
            rss_after_fill = serve.memory_info().rss / 2**20
        token = settings.serving.api_token.get_secret_value()
        api: dict[str, dict[str, Any]] = {}
        with httpx.Client(
            base_url=settings.serving.endpoint,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as client:

            def call(route: str, params: dict[str, Any]) -> Callable[[str], Any]:
                def run(source: str) -> Any:
                    response = client.get(route, params={**params, "source": source})
                    response.raise_for_status()
                    return response.json()

                return run

            cases = questions(today)
            for name, (route, params) in cases.items():
                api[name] = {
                    s: percentiles(t) for s, t in timed(call(route, params), args.runs).items()
                }
                print(name, api[name], flush=True)
        sampler.done.set()
        peak_rss = max(rss_after_fill, sampler.peak.get("python", 0.0))
        memory = psutil.virtual_memory()
    finally:
        stack.down(["serving"], progress=lambda line: None)
    psutil.wait_procs([serve], timeout=60)  # it holds the data directory until it exits
    raw: dict[str, dict[str, Any]] = {}
    with EmbeddedStore(data_dir) as local:
        for name, (route, params) in cases.items():
            times = timed(lambda s, r=route, p=params: in_process(local, r, p, s), args.runs)
            raw[name] = {s: percentiles(t) for s, t in times.items()}
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    result = {
        "benchmark": "merged",
        "command": "uv run python bench/bench_merged.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "keep"),
        "at": now.isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "goal_p95_ms": 50,
        "realtime_fill": realtime,
        "batch_fill": batch,
        "optimize_s": optimize_s,
        "tables": tables,
        "bytes_on_disk": sum(int(t["bytes_on_disk"]) for t in tables),
        "serve_rss_mib": {"after_fill": round(rss_after_fill), "peak_seen": round(peak_rss)},
        "machine_memory_mib": {
            "total": round(memory.total / 2**20),
            "available": round(memory.available / 2**20),
        },
        "demo_budget_mib": DEMO_BUDGET_MIB,
        "runs": args.runs,
        "api": api,
        "raw_sql_in_process": raw,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "merged.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
