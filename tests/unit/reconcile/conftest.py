"""A clean serving store (the session's chdb engine) and a fresh DuckDB warehouse per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdapipe.reconcile.outputs import TABLE
from lambdapipe.serving.ddl import MATERIALIZED_VIEWS, TABLES
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.warehouse.duckdb import DuckDBWarehouse


@pytest.fixture
def store(engine: EmbeddedStore) -> EmbeddedStore:
    for table in TABLES:
        engine.execute(f"TRUNCATE TABLE {table.name}")
    for view in MATERIALIZED_VIEWS:
        engine.execute(f"TRUNCATE TABLE {view.target}")
    engine.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return engine


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as opened:
        yield opened
