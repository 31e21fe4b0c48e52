"""The session's embedded store (`engine`, tests/unit/conftest.py), its tables emptied per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.serving_sample import Batch, make_batch
from lambdapipe.serving.ddl import BATCH_TWINS, MATERIALIZED_VIEWS, PUBLICATIONS, TABLES
from lambdapipe.serving.embedded import EmbeddedStore


def _empty_batch_side(engine: EmbeddedStore) -> None:
    for twin in BATCH_TWINS:
        engine.execute(f"TRUNCATE TABLE {twin.name}")
    engine.execute(f"TRUNCATE TABLE {PUBLICATIONS}")


@pytest.fixture
def store(engine: EmbeddedStore) -> Iterator[EmbeddedStore]:
    """The session's store with every table, MV target and batch twin empty (nothing
    published: answers are the realtime layer's); a test's publications are undone after it."""
    for table in TABLES:
        engine.execute(f"TRUNCATE TABLE {table.name}")
    for view in MATERIALIZED_VIEWS:
        engine.execute(f"TRUNCATE TABLE {view.target}")
    _empty_batch_side(engine)
    yield engine
    _empty_batch_side(engine)


@pytest.fixture(scope="session")
def batch() -> Batch:
    return make_batch(20_000, seed=7)
