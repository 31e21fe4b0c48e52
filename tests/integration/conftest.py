"""The local stack for integration tests: started once per test session, on its own ports.

It lives under `.lambdapipe/test/` (not a pytest tmp dir: PostgreSQL runs as its own account
and must be able to reach its data directory) with every port shifted, so it runs beside a
developer's own stack. It is purged when the session ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings, ensure_local_secrets

REPO = Path(__file__).resolve().parents[2]
TEST_HOME = REPO / ".lambdapipe" / "test"
LIB = REPO / ".lambdapipe" / "lib"
# Two test sessions at once (say, two developers' branches) need distinct stacks.
STACK_NAME = os.environ.get("PIPE_TEST_STACK", "main")
PORT_OFFSET = int(os.environ.get("PIPE_TEST_PORT_OFFSET", "20000"))


# The speed layer's end-to-end scenarios (200K events through Spark, kill -9, store outage) need
# the 2 cores to themselves for ~10 minutes; until they are proven on a quiet CI run they are
# `heavy`: `make test` leaves them out, `make test-heavy` runs them.
HEAVY_MODULES = ("tests/integration/test_speed_layer.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(HEAVY_MODULES):
            item.add_marker(pytest.mark.heavy)


def stack_settings(name: str, port_offset: int, kafka_nodes: int = 1) -> Settings:
    """Settings for a private test stack under .lambdapipe/test/<name>."""
    home = TEST_HOME / name
    env_file = ensure_local_secrets(home)
    return Settings(
        _env_file=env_file,  # type: ignore[call-arg]
        home=home,
        lib_home=LIB,
        port_offset=port_offset,
        kafka={"nodes": kafka_nodes},  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def stack_settings_main() -> Settings:
    return stack_settings(STACK_NAME, port_offset=PORT_OFFSET)


@pytest.fixture(scope="session")
def stack(stack_settings_main: Settings) -> Iterator[Stack]:
    """The whole 1-node stack, up for the session; purged at the end."""
    shutil.rmtree(stack_settings_main.home / "data", ignore_errors=True)
    local = Stack(stack_settings_main)
    local.up(progress=lambda line: None)
    yield local
    local.down(purge=True, progress=lambda line: None)
    shutil.rmtree(stack_settings_main.home, ignore_errors=True)


@pytest.fixture
def settings(stack: Stack) -> Settings:
    return stack.settings
