"""Shared fixtures: every test runs isolated from the developer's LAMBDAPIPE_* environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from lambdapipe.settings import get_settings


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One small local SparkSession for every test that needs Spark.

    One fixture for all: a second `getOrCreate()` in the same run would silently return the
    first session and ignore its own settings.
    """
    from pyspark.sql import SparkSession  # only the tests that use Spark pay for importing it

    session = (
        SparkSession.builder.master("local[2]")
        .appName("lambdapipe-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "768m")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop LAMBDAPIPE_* variables and the settings cache around each test."""
    for key in list(os.environ):
        if key.startswith("LAMBDAPIPE_") and key != "LAMBDAPIPE_LIB_HOME":
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
