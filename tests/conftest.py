"""Shared fixtures: every test runs isolated from the developer's LAMBDAPIPE_* environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdapipe.settings import get_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop LAMBDAPIPE_* variables and the settings cache around each test."""
    for key in list(os.environ):
        if key.startswith("LAMBDAPIPE_") and key != "LAMBDAPIPE_LIB_HOME":
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
