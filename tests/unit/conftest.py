"""Fixtures shared by the unit tests of several layers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdapipe.serving.embedded import EmbeddedStore

RETENTION_DAYS = 30


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    """The embedded store of the test session: chdb allows one engine (one data directory) per
    process, so the serving and reconcile tests share it."""
    store = EmbeddedStore(Path(tmp_path_factory.mktemp("chdb")))
    store.create_schema(RETENTION_DAYS)
    yield store
    store.close()
