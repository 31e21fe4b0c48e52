"""Batch publication on the embedded engine: twins built with the realtime views' expressions,
merged answers at the watermark, exactly once per (day, run), and atomic re-publication."""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi.testclient import TestClient

from bench.serving_sample import Batch, make_batch
from lambdapipe.errors import Problem
from lambdapipe.serving import queries
from lambdapipe.serving.api import create_app
from lambdapipe.serving.ddl import BATCH_TWINS, PUBLICATIONS, BatchTwin, upgrade_statements
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.publish import (
    CuratedDay,
    Published,
    publication_order,
    publish_day,
    published,
)
from tests.unit.serving.loading import load
from tests.unit.serving.test_api import ACCESS, TOKEN

TODAY = datetime.now(UTC).date()
DAY = TODAY - timedelta(days=2)  # published
NEXT = TODAY - timedelta(days=1)  # realtime only


def day_batch(day: date, seed: int, events: int = 3_000) -> Batch:
    """A batch whose events, transactions and sessions all fall on `day`."""
    start = datetime.combine(day, time(1), UTC)
    return make_batch(events, seed=seed, start=start, span_s=20 * 3600, products=50)


def as_curated(batch: Batch, day: date, run: str) -> CuratedDay:
    """The batch as the curated Iceberg tables hold it: microsecond instants, IPs as text, and
    the columns only the batch layer has (which publication leaves out)."""

    def micro(table: pa.Table) -> pa.Table:
        for i, field in enumerate(table.schema):
            if pa.types.is_timestamp(field.type):
                table = table.set_column(i, field.name, table[i].cast(pa.timestamp("us", "UTC")))
        return table

    events = micro(batch.events)
    ips = [str(ipaddress.IPv4Address(v)) for v in events["ip_address"].to_pylist()]
    events = events.set_column(
        events.schema.get_field_index("ip_address"), "ip_address", pa.array(ips)
    )
    events = events.append_column(
        "session_key", pc.binary_join_element_wise(events["session_id"], pa.scalar("/x"), "")
    )
    return CuratedDay(
        day,
        run,
        {
            "user_events_realtime": events,
            "transactions_realtime": micro(batch.transactions),
            "user_sessions_realtime": micro(batch.sessions),
        },
    )


def _function_of(kind: str) -> str:
    """`uniqCombined(14)` of `AggregateFunction(uniqCombined(14), UUID)`."""
    inner, depth = kind.removeprefix("AggregateFunction("), 0
    for i, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            return inner[:i]
    raise ValueError(kind)


def _merged_columns(twin: BatchTwin) -> str:
    """Every column of the rollup finalized per key: sums summed, states merged."""
    keys = [k.strip() for k in twin.view.order_by.split(",")]
    out = []
    for name, kind in twin.view.columns:
        if name in keys:
            out.append(f"`{name}`")
        elif kind.startswith("SimpleAggregateFunction(sum"):
            out.append(f"sum(`{name}`) AS `{name}`")
        else:
            function = _function_of(kind)
            merge = function.replace("(", "Merge(", 1) if "(" in function else f"{function}Merge"
            out.append(f"{merge}(`{name}`) AS `{name}`")
    return ", ".join(out)


def finalized(store: EmbeddedStore, twin: BatchTwin, table: str, day: date) -> list[Any]:
    order = twin.view.order_by
    return store.query_rows(
        f"SELECT {_merged_columns(twin)} FROM {table} WHERE {twin.day} = {{day:Date}} "
        f"GROUP BY {order} ORDER BY {order}",
        {"day": day},
    )


def test_publication_builds_every_twin_as_the_realtime_views_do(store: EmbeddedStore) -> None:
    batch = day_batch(DAY, seed=1)
    load(store, batch, "rt")
    done = publish_day(store, as_curated(batch, DAY, "run-1"))
    assert done.published and done.previous_run is None
    assert done.rows["user_events"] == batch.events.num_rows
    assert done.rows["user_sessions"] == batch.sessions.num_rows
    assert done.rows["transactions"] == batch.transactions.num_rows
    for twin in BATCH_TWINS:
        expected = finalized(store, twin, twin.realtime, DAY)
        assert expected, twin.name
        assert finalized(store, twin, twin.name, DAY) == expected, twin.name
        assert done.rows[twin.name] > 0
    assert published(store) == Published(DAY, DAY)
    assert queries.watermark(store) == DAY


def _answers(store: EmbeddedStore, start: date, end: date, source: str = "merged") -> Any:
    layer: Any = source
    return {
        "funnel": queries.funnel(store, start, end, source=layer),
        "tiers": queries.tier_performance(store, start, end, layer),
        "products": queries.top_products(store, start, end, "revenue", 20, layer),
        "sessions": queries.sessions(store, start, end, "device_type", source=layer),
        "revenue": queries.revenue(store, start, end, "day", layer),
    }


def test_merged_answers_are_batch_up_to_the_watermark_and_realtime_after(
    store: EmbeddedStore,
) -> None:
    realtime_day, later, corrected = day_batch(DAY, 2), day_batch(NEXT, 3), day_batch(DAY, 4)
    load(store, realtime_day, "rt-day")
    load(store, later, "rt-next")
    before = queries.funnel(store, DAY, NEXT)
    assert before["watermark"] is None and before["sources"] == ["realtime"]
    publish_day(store, as_curated(corrected, DAY, "run-1"))

    merged = queries.funnel(store, DAY, NEXT)
    batch_only = queries.funnel(store, DAY, NEXT, source="batch")
    realtime_next = queries.funnel(store, NEXT, NEXT, source="realtime")
    realtime_all = queries.funnel(store, DAY, NEXT, source="realtime")
    assert merged["watermark"] == DAY.isoformat() and merged["sources"] == ["batch", "realtime"]
    assert batch_only["sessions"] == corrected.sessions.num_rows
    assert realtime_all == before | {"watermark": DAY.isoformat(), "source": "realtime"}
    for i, step in enumerate(merged["steps"]):
        assert step["sessions"] == (
            batch_only["steps"][i]["sessions"] + realtime_next["steps"][i]["sessions"]
        )
    assert merged["sessions"] == corrected.sessions.num_rows + later.sessions.num_rows

    days = {r["bucket"][:10]: r for r in queries.revenue(store, DAY, NEXT, "day")}
    assert {d: r["source"] for d, r in days.items()} == {
        DAY.isoformat(): "batch",
        NEXT.isoformat(): "realtime",
    }
    completed = pc.equal(corrected.transactions["status"], "completed")
    assert days[DAY.isoformat()]["orders"] == pc.sum(completed.cast(pa.int64())).as_py()

    # distinct users merged across the layers from the same uniqCombined states
    tiers = {r["user_tier"]: r for r in queries.tier_performance(store, DAY, NEXT)}
    for tier, row in tiers.items():
        users = set()
        for batch in (corrected, later):
            s = batch.sessions.filter(pc.equal(batch.sessions["user_tier"], tier))
            users |= set(s["user_id"].to_pylist())
        assert row["users"] == len(users), tier
        assert row["sources"] == ["batch", "realtime"]


def test_publishing_twice_or_republishing_leaves_the_answers_unchanged(
    store: EmbeddedStore,
) -> None:
    batch = day_batch(DAY, 5)
    load(store, day_batch(DAY, 6), "rt")
    first = publish_day(store, as_curated(batch, DAY, "run-1"))
    answers = _answers(store, DAY, NEXT)
    again = publish_day(store, as_curated(batch, DAY, "run-1"))
    assert first.published and not again.published and again.previous_run == "run-1"
    assert _answers(store, DAY, NEXT) == answers
    rerun = publish_day(store, as_curated(batch, DAY, "run-2"))  # a re-run of the same day
    assert rerun.published and rerun.previous_run == "run-1"
    assert _answers(store, DAY, NEXT) == answers
    forced = publish_day(store, as_curated(batch, DAY, "run-2"), force=True)
    assert forced.published
    assert _answers(store, DAY, NEXT) == answers
    runs = store.query_rows(f"SELECT day, run_id FROM {PUBLICATIONS} ORDER BY published_at")
    assert [r["run_id"] for r in runs] == ["run-1", "run-2", "run-2"]


def test_a_day_with_no_rows_in_a_run_empties_the_twins(store: EmbeddedStore) -> None:
    batch = day_batch(DAY, 7)
    publish_day(store, as_curated(batch, DAY, "run-1"))
    nothing = {name: rows.slice(0, 0) for name, rows in as_curated(batch, DAY, "x").rows.items()}
    done = publish_day(store, CuratedDay(DAY, "run-2", nothing))
    assert all(done.rows[twin.name] == 0 for twin in BATCH_TWINS)
    assert queries.funnel(store, DAY, DAY)["sessions"] == 0
    assert queries.watermark(store) == DAY


def test_readers_never_see_a_half_published_day(store: EmbeddedStore) -> None:
    old, new = day_batch(DAY, 8), day_batch(DAY, 9)
    publish_day(store, as_curated(new, DAY, "new-0"))
    new_answers = _answers(store, DAY, DAY)
    publish_day(store, as_curated(old, DAY, "old-0"))
    old_answers = _answers(store, DAY, DAY)
    assert old_answers != new_answers
    for name in old_answers:
        assert old_answers[name] != new_answers[name], name

    seen: list[dict[str, Any]] = []
    publishing = threading.Event()
    done = threading.Event()

    def read() -> None:
        publishing.wait()
        while not done.is_set():
            seen.append(_answers(store, DAY, DAY))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    publishing.set()
    try:
        for i in range(3):
            publish_day(store, as_curated(new, DAY, f"new-{i + 1}"))
            publish_day(store, as_curated(old, DAY, f"old-{i + 1}"))
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert len(seen) >= 6
    for answers in seen:
        for name, answer in answers.items():
            assert answer in (old_answers[name], new_answers[name]), name


def test_published_days_stay_one_unbroken_range(store: EmbeddedStore) -> None:
    d = DAY
    one = timedelta(days=1)
    assert publication_order([d + one, d], Published(None, None)) == [d, d + one]
    assert publication_order([d - one, d - 2 * one, d + one], Published(d, d)) == [
        d + one,
        d - one,
        d - 2 * one,
    ]
    with pytest.raises(Problem, match="unpublished days"):
        publication_order([d + 3 * one], Published(d, d + one))
    publish_day(store, as_curated(day_batch(d, 10, 200), d, "run-1"))
    with pytest.raises(Problem, match="unbroken range"):
        publish_day(store, as_curated(day_batch(d + 2 * one, 11, 200), d + 2 * one, "run-1"))


def test_every_api_route_takes_the_source(store: EmbeddedStore) -> None:
    load(store, day_batch(NEXT, 12), "rt")
    publish_day(store, as_curated(day_batch(DAY, 13), DAY, "run-1"))
    days = f"start={DAY}&end={NEXT}"
    with TestClient(create_app(store, "embedded", ACCESS)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        for path in ("funnel", "tiers", "products/top", "sessions", "revenue"):
            answers = {}
            for source in ("merged", "realtime", "batch"):
                response = client.get(f"/api/{path}?{days}&source={source}")
                assert response.status_code == 200, response.text
                answers[source] = response.json()
            assert answers["merged"] != answers["realtime"], path
            assert answers["batch"] != answers["realtime"], path
            assert client.get(f"/api/{path}?source=lake").status_code == 400
        revenue = client.get(f"/api/revenue?{days}&interval=day").json()
        assert [(r["source"], r["watermark"]) for r in revenue] == [
            ("batch", DAY.isoformat()),
            ("realtime", DAY.isoformat()),
        ]
        activity = client.get("/api/activity?source=batch").json()
        assert activity["watermark"] == DAY.isoformat() and activity["source"] == "batch"


def test_a_store_from_before_the_product_projection_is_upgraded_keeping_its_answers(
    store: EmbeddedStore,
) -> None:
    # The product rollup, its twin and the twin's staging as they were created before the
    # projection (same columns and key, no projection), holding a published day and realtime.
    view = next(t.view for t in BATCH_TWINS if t.view.projection is not None)
    twin = next(t for t in BATCH_TWINS if t.view is view)
    old = dataclasses.replace(view, projection=None)
    store.execute(f"DROP VIEW {view.name}")
    for table in (view.target, twin.name, twin.staging):
        store.execute(f"DROP TABLE {table}")
    table_ddl, view_ddl = old.ddl()
    store.execute(table_ddl)
    store.execute(view_ddl)
    old_twin = dataclasses.replace(twin, view=old)
    for table in (twin.name, twin.staging):
        store.execute(old_twin.ddl(table))
    publish_day(store, as_curated(day_batch(DAY, seed=31), DAY, "old"))
    load(store, day_batch(NEXT, seed=32), "old:realtime")
    before = queries.top_products(store, DAY, NEXT, "revenue", 10)
    assert before and {"batch", "realtime"} <= {s for row in before for s in row["sources"]}

    store.create_schema(retention_days=30)

    projections = store.query_rows(
        "SELECT DISTINCT table FROM system.projection_parts WHERE active AND name = {name:String}",
        {"name": view.projection.name},
    )
    assert {row["table"] for row in projections} == {view.target, twin.name}
    assert queries.top_products(store, DAY, NEXT, "revenue", 10) == before
    # publishing after the upgrade swaps in days from the new staging table
    publish_day(store, as_curated(day_batch(DAY, seed=31), DAY, "new"))
    assert queries.top_products(store, DAY, NEXT, "revenue", 10) == before
    assert upgrade_statements(created_tables(store)) == []


def created_tables(store: EmbeddedStore) -> dict[str, str]:
    rows = store.query_rows(
        "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()"
    )
    return {str(row["name"]): str(row["create_table_query"]) for row in rows}
