"""Where the test stacks live and on which ports: shared by fixtures, tests and benchmarks.

Test stacks live under `.lambdapipe/test/` (not a pytest tmp dir: PostgreSQL runs as its own
account and must be able to reach its data directory) with every port shifted, so they run
beside a developer's own stack.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings, ensure_local_secrets

REPO = Path(__file__).resolve().parents[1]
TEST_HOME = REPO / ".lambdapipe" / "test"
LIB = REPO / ".lambdapipe" / "lib"
# Two test sessions at once (say, two developers' branches) need distinct stacks.
STACK_NAME = os.environ.get("PIPE_TEST_STACK", "main")
PORT_OFFSET = int(os.environ.get("PIPE_TEST_PORT_OFFSET", "20000"))


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


@contextmanager
def running_stack(settings: Settings) -> Iterator[Stack]:
    """A stack started from empty data for the block, purged afterwards."""
    shutil.rmtree(settings.home / "data", ignore_errors=True)
    local = Stack(settings)
    try:  # a start that fails half-way stops what it started, too
        local.up(progress=lambda line: None)
        yield local
    finally:
        local.down(purge=True, progress=lambda line: None)
        shutil.rmtree(settings.home, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_alone(home: Path) -> Iterator[Settings]:
    """`lambdapipe serve` supervised by the stack, on a free port with its own home and
    generated secrets, for a module's fixture: its settings, stopped after."""
    settings = Settings(
        _env_file=ensure_local_secrets(home),  # type: ignore[call-arg]
        home=home,
        serving={"port": free_port()},  # type: ignore[arg-type]
    )
    stack = Stack(settings)
    stack.up(["serving"], progress=lambda line: None)
    yield settings
    stack.down(["serving"], progress=lambda line: None)
