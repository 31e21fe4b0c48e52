"""The session's embedded store (`engine`, tests/unit/conftest.py), its tables emptied per test."""

from __future__ import annotations

import pytest

from bench.serving_sample import Batch, make_batch
from lambdapipe.serving.ddl import MATERIALIZED_VIEWS, TABLES
from lambdapipe.serving.embedded import EmbeddedStore


@pytest.fixture
def store(engine: EmbeddedStore) -> EmbeddedStore:
    """The session's store with every table and MV target empty."""
    for table in TABLES:
        engine.execute(f"TRUNCATE TABLE {table.name}")
    for view in MATERIALIZED_VIEWS:
        engine.execute(f"TRUNCATE TABLE {view.target}")
    return engine


@pytest.fixture(scope="session")
def batch() -> Batch:
    return make_batch(20_000, seed=7)
