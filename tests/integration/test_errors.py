"""What a user sees when something is wrong: one clear message, a hint, never a stack trace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stacks import LIB, PORT_OFFSET, STACK_NAME, TEST_HOME

pytestmark = pytest.mark.integration


@pytest.fixture
def home() -> Iterator[Path]:
    path = TEST_HOME / f"{STACK_NAME}-errors"
    yield path
    subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", "down", "--purge"],
        env=_env(path),
        capture_output=True,
        check=False,
    )


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDAPIPE_")}
    env.update(
        LAMBDAPIPE_HOME=str(home),
        LAMBDAPIPE_LIB_HOME=str(LIB),
        LAMBDAPIPE_PORT_OFFSET=str(PORT_OFFSET + 2000),
        LAMBDAPIPE_READY_TIMEOUT_S="60",
        **extra,
    )
    return env


def lambdapipe(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", *args],
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def assert_clear_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    output = " ".join((result.stdout + result.stderr).split())  # undo the console's wrapping
    assert result.returncode == 1, output
    assert "Traceback" not in output
    for phrase in phrases:
        assert phrase in output, output


def test_port_in_use(home: Path) -> None:
    port = 15432 + PORT_OFFSET + 2000
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = lambdapipe(home, "up", "--only", "postgres")
    assert_clear_error(result, f"port {port} is already in use", "LAMBDAPIPE_PORT_OFFSET")


def test_missing_java(home: Path) -> None:
    result = lambdapipe(home, "up", "--only", "s3proxy", JAVA_HOME="/nonexistent/jdk")
    assert_clear_error(result, "Java 17+ is required", "make setup")


def test_missing_package(home: Path) -> None:
    result = lambdapipe(home, "up", "--only", "prometheus", PATH="/nonexistent")
    assert_clear_error(result, "Prometheus is not installed", "make setup")


def test_service_that_fails_to_start_shows_its_log(home: Path) -> None:
    # a heap too small for the JVM: the process exits at once
    result = lambdapipe(home, "up", "--only", "s3proxy", LAMBDAPIPE_S3__HEAP="1k")
    assert_clear_error(result, "s3proxy exited while starting", "last log lines", "heap")


def test_up_twice_says_so(home: Path) -> None:
    first = lambdapipe(home, "up", "--only", "postgres")
    assert first.returncode == 0, first.stdout + first.stderr
    second = lambdapipe(home, "up", "--only", "postgres")
    assert second.returncode == 0
    assert "already running" in second.stdout
    assert "already up" in second.stdout
