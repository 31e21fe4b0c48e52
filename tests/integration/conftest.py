"""The local stack for integration tests: started once per test session, on its own ports.

Where it lives and its ports: `tests/stacks.py`. It is purged when the session ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings
from tests.stacks import PORT_OFFSET, STACK_NAME, running_stack, stack_settings

# The speed layer's end-to-end scenarios (200K events through Spark, kill -9, store outage) need
# the 2 cores to themselves for ~10 minutes; until they are proven on a quiet CI run they are
# `heavy`: `make test` leaves them out, `make test-heavy` runs them.
HEAVY_MODULES = ("tests/integration/test_speed_layer.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(HEAVY_MODULES):
            item.add_marker(pytest.mark.heavy)


@pytest.fixture(scope="session")
def stack_settings_main() -> Settings:
    return stack_settings(STACK_NAME, port_offset=PORT_OFFSET)


@pytest.fixture(scope="session")
def stack(stack_settings_main: Settings) -> Iterator[Stack]:
    """The whole 1-node stack, up for the session; purged at the end."""
    with running_stack(stack_settings_main) as local:
        yield local


@pytest.fixture
def settings(stack: Stack) -> Settings:
    return stack.settings
