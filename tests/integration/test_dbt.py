"""The dbt project on hand-made RAW rows: marts equal a truth counted in Python, re-runs change
nothing, late data adds exactly itself, every data test can fail, and the same project builds
on the Snowflake target (a local fakesnow server). No stack needed: DuckDB files in tmp.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from lambdapipe.resources import Resources, warehouse_path
from lambdapipe.settings import Settings, WarehouseSettings
from lambdapipe.warehouse import transform
from lambdapipe.warehouse.base import Warehouse
from lambdapipe.warehouse.duckdb import DuckDBWarehouse
from tests import warehouse_sample as ws

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MARTS = (
    "user_sessions",
    "daily_metrics",
    "customer_lifetime_value",
    "tier_behaviour",
    "product_performance",
    "conversion_funnel",
)
RAW = ("user_events", "transactions", "products", "dead_letters")
# bookkeeping: when the inputs behind a row were loaded (a re-run loads again, so it moves)
BOOKKEEPING = {"loaded_through"}
EPOCH = datetime(1970, 1, 1)


def _settings(home: Path, **warehouse: Any) -> Settings:
    return Settings(home=home, warehouse=WarehouseSettings(threads=1, **warehouse))


def _load(wh: Warehouse, sample: ws.Sample, days: tuple[date, ...], batch: str) -> None:
    with wh:
        for day in days:
            for table in RAW:
                wh.load_raw(table, sample.day_rows(table, day), batch, f"{table}.parquet", day)


def _rows(wh: Warehouse, table: str) -> list[dict[str, Any]]:
    return wh.query_arrow(f"select * from marts.{table}").to_pylist()


def _normal(value: Any) -> Any:
    if isinstance(value, Decimal):
        # counts may come back as decimals of scale 0, money has 2 decimals
        return int(value) if value.as_tuple().exponent == 0 else f"{value:.2f}"
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, datetime) and value == EPOCH:
        # fakesnow hands NULL timestamps to Arrow as the epoch (no mart holds a real one)
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def mart_rows(wh: Warehouse) -> dict[str, list[str]]:
    """Per mart: every row as sorted JSON (bookkeeping columns left out), in a fixed order."""
    out = {}
    with wh:
        for mart in MARTS:
            rows = [
                json.dumps({k: _normal(v) for k, v in sorted(r.items()) if k not in BOOKKEEPING})
                for r in _rows(wh, mart)
            ]
            out[mart] = sorted(rows)
    return out


def mart_fingerprints(wh: Warehouse) -> dict[str, tuple[int, str]]:
    """Per mart: its row count and a hash of all its rows."""
    return {
        mart: (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        for mart, rows in mart_rows(wh).items()
    }


@pytest.fixture(scope="module")
def sample() -> ws.Sample:
    return ws.build_sample()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, sample: ws.Sample) -> Settings:
    """Two days loaded and built once on DuckDB."""
    settings = _settings(tmp_path_factory.mktemp("dbt-duckdb"))
    _load(Resources(settings).warehouse(), sample, ws.DAYS, "batch-1")
    run = transform.build(settings)
    assert {r.name for r in run.results if r.kind == "model"} >= set(MARTS)
    return settings


def test_marts_equal_the_truth(built: Settings, sample: ws.Sample) -> None:
    wh = Resources(built).warehouse()
    with wh:
        tiers = _rows(wh, "tier_behaviour")
        daily = {r["metric_date"]: r for r in _rows(wh, "daily_metrics")}
        sessions = {r["session_key"]: r for r in _rows(wh, "user_sessions")}
        funnel = _rows(wh, "conversion_funnel")

    counted = {
        (r["activity_date"], kind, r["user_tier"]): r[column]
        for r in tiers
        for kind, column in ws.COUNTS.items()
        if r[column]
    }
    assert counted == ws.events_by_day_type_tier(sample)

    money = {
        (r["activity_date"], r["user_tier"]): (r["gross_bookings"], r["revenue"], r["refunds"])
        for r in tiers
        if r["transactions"]
    }
    assert money == ws.money_by_day_tier(sample)

    truth_sessions = ws.sessions(sample)
    assert set(sessions) == set(truth_sessions)
    for key, truth in truth_sessions.items():
        assert {k: sessions[key][k] for k in truth} == truth, key

    by_day: dict[date, dict[str, int]] = {}
    for r in funnel:
        day = by_day.setdefault(r["session_date"], dict.fromkeys(("sessions", *ws.FUNNEL), 0))
        day["sessions"] += r["sessions"]
        for step in ws.FUNNEL:
            day[step] += r[f"sessions_with_{step}"]
    assert by_day == ws.funnel_by_day(sample)

    letters = {
        (day, reason): daily[day][f"dead_letters_{reason}"]
        for day in daily
        for reason in ("bad_ip", "not_json", "business_rule", "too_large")
        if daily[day][f"dead_letters_{reason}"]
    }
    assert letters == ws.dead_letters_by_day_reason(sample)
    # the midnight-crossing session belongs to the first day, its last events to the second
    crossing = [s for s in sessions.values() if s["session_end"].date() > s["session_date"]]
    assert crossing


def test_a_rerun_changes_nothing_and_late_data_adds_exactly_itself(
    tmp_path: Path, sample: ws.Sample
) -> None:
    settings = _settings(tmp_path)
    _load(Resources(settings).warehouse(), sample, ws.DAYS, "batch-1")
    transform.build(settings)
    first = mart_fingerprints(Resources(settings).warehouse())

    # the same day again (the second, whose events continue a session of the first)
    _load(Resources(settings).warehouse(), sample, ws.DAYS[1:], "batch-2")
    transform.build(settings)
    assert mart_fingerprints(Resources(settings).warehouse()) == first

    # a late session on the first day arrives; the batch re-runs that day
    late = replace(sample, events=list(sample.events), transactions=list(sample.transactions))
    rng = ws.random.Random(99)
    ws._session(
        rng,
        late,
        "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d",
        "gold",
        datetime(2026, 3, 2, 15),
        _catalogue(sample),
        "nobody",
    )
    _load(Resources(settings).warehouse(), late, ws.DAYS[:1], "batch-3")
    transform.build(settings)
    incremental = mart_fingerprints(Resources(settings).warehouse())
    assert incremental != first

    # exactly what a build from scratch of the same RAW gives
    scratch = _settings(tmp_path / "scratch")
    _load(Resources(scratch).warehouse(), late, ws.DAYS, "batch-1")
    transform.build(scratch)
    assert mart_fingerprints(Resources(scratch).warehouse()) == incremental


def _catalogue(sample: ws.Sample) -> list[tuple[str, str, str, Decimal]]:
    return [
        (p["product_id"], p["name"], p["category"], p["price"]) for p in sample.products[ws.DAYS[0]]
    ]


# ---- every data test fails on a hand-made bad row ---------------------------------------------

# how a row breaks each custom rule (expression_is_true tests are named in the models' yml)
BREAKS = {
    "user_sessions_counts_add_up": "event_count + 1 AS event_count",
    "conversion_funnel_narrows": "sessions + 1 AS reached_purchase",
    "product_performance_buyers_bought": "purchases + 1 AS buyers",
    "daily_metrics_consistent": "sessions + 1 AS converted_sessions",
    "customer_lifetime_value_consistent": "gross_bookings + 1 AS revenue",
}
# a staging view's tests break through its RAW table
VIEWS = {
    "stg_shop__events": "raw.user_events",
    "stg_shop__transactions": "raw.transactions",
    "stg_shop__products": "raw.products",
    "stg_shop__dead_letters": "raw.dead_letters",
}


def _bad_row(test: dict[str, Any], model: dict[str, Any]) -> str:
    """An INSERT of one copied row that breaks `test` (DuckDB SQL)."""
    kind = test["test_metadata"]["name"]
    column = test["test_metadata"]["kwargs"].get("column_name")
    table = VIEWS.get(model["name"], f"{model['schema']}.{model['alias']}")
    change = {
        "unique": "",
        "unique_combination_of_columns": "",
        "not_null": f"NULL AS {column}",
        "accepted_values": f"'not-a-value' AS {column}",
        "relationships": f"'00000000-0000-4000-8000-00000000dead' AS {column}",
        "total_adds_up": "total_amount + 1 AS total_amount",
        "same_day": "batch_day + 1 AS batch_day",
        "no_validation_errors": "'hand_made' AS validation_errors",
        "expression_is_true": BREAKS.get(test["name"], ""),
    }[kind]
    assert change or kind.startswith("unique"), f"no bad row for {test['name']}"
    replacing = f" REPLACE ({change})" if change else ""
    return f"INSERT INTO {table} SELECT *{replacing} FROM {table} LIMIT 1"


def test_every_data_test_fails_on_a_bad_row(built: Settings, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    good = tmp_path / "good.duckdb"
    _copy(warehouse_path(built), good)
    manifest = json.loads((transform.state_dir(built) / "target" / "manifest.json").read_text())
    nodes = manifest["nodes"]
    tests = [n for n in nodes.values() if n["resource_type"] == "test"]
    assert len(tests) >= 30
    for test in tests:
        model = nodes[test["attached_node"]]
        target = warehouse_path(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(good, target)
        with DuckDBWarehouse(target) as wh:
            wh.conn.execute(_bad_row(test, model))
        run = transform.run_dbt(settings, ["test", "--select", test["name"]], check=False)
        assert run.result(test["name"]).status == "fail", test["name"]


def test_docs_generate(built: Settings) -> None:
    run = transform.run_dbt(built, ["docs", "generate"])
    assert run.success
    assert (transform.state_dir(built) / "target" / "catalog.json").exists()


# ---- the Snowflake target, on a local fakesnow server -------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fakesnow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A fresh fakesnow server for this module (an aborted session would hang dbt)."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("fakesnow") / "fakesnow.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "fakesnow", "-s", "-p", str(port)], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("fakesnow did not start")
    yield port
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


# dbt-snowflake 1.11 still passes insecure_mode=False, which connector 4.x warns about
@pytest.mark.filterwarnings("ignore:The 'insecure_mode' connection property is deprecated")
def test_the_same_project_builds_on_snowflake(
    fakesnow: int, tmp_path: Path, built: Settings, sample: ws.Sample
) -> None:
    settings = _settings(
        tmp_path,
        backend="snowflake",
        snowflake_account="fakesnow",
        snowflake_user="lambdapipe",
        snowflake_password=SecretStr("fakesnow-accepts-any"),
        snowflake_database="LAMBDAPIPE",
        snowflake_host="127.0.0.1",
        snowflake_port=fakesnow,
        snowflake_protocol="http",
    )
    _load(Resources(settings).warehouse(), sample, ws.DAYS, "batch-1")
    run = transform.build(settings)
    kinds = {r.kind for r in run.results}
    assert {"model", "test", "unit_test"} <= kinds
    assert all(not r.failed for r in run.results)
    # the password went through the environment, never into the profile
    assert (
        "fakesnow-accepts-any" not in (transform.state_dir(settings) / "profiles.yml").read_text()
    )
    # the same numbers as DuckDB, mart by mart
    duckdb_marts = mart_rows(Resources(built).warehouse())
    assert mart_rows(Resources(settings).warehouse()) == duckdb_marts
    # and a re-run of a day there too (delete+insert, no merge)
    _load(Resources(settings).warehouse(), sample, ws.DAYS[1:], "batch-2")
    transform.build(settings)
    assert mart_rows(Resources(settings).warehouse()) == duckdb_marts


def test_a_failing_model_is_one_problem_naming_it(built: Settings, tmp_path: Path) -> None:
    from lambdapipe.errors import Problem

    settings = _settings(tmp_path)
    _copy(warehouse_path(built), _target(settings))
    with DuckDBWarehouse(warehouse_path(settings)) as wh:
        wh.conn.execute("INSERT INTO raw.transactions SELECT * FROM raw.transactions LIMIT 1")
    with pytest.raises(Problem, match="unique_stg_shop__transactions_transaction_id: fail"):
        transform.build(settings)


def _target(settings: Settings) -> Path:
    path = warehouse_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _copy(source: Path, target: Path) -> None:
    """Copy a DuckDB file whole: its write-ahead log is checkpointed into it first."""
    with DuckDBWarehouse(source) as wh:
        wh.conn.execute("CHECKPOINT")
    target.unlink(missing_ok=True)
    Path(f"{target}.wal").unlink(missing_ok=True)
    shutil.copy(source, target)
