"""Smoke test: every command of the CLI shows its help, and every module imports.

The commands are discovered from the typer app itself, so a new command is covered the day it
is added.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

import lambdapipe
from lambdapipe.cli import app


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command below `command`, as the words a user types."""
    paths = [path]
    # a group (typer's own or click's) holds its sub-commands by name
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths.extend(command_paths(sub, (*path, name)))
    return paths


COMMANDS = command_paths(typer.main.get_command(app))
MODULES = sorted(
    info.name for info in pkgutil.walk_packages(lambdapipe.__path__, prefix="lambdapipe.")
)


def test_the_walk_finds_the_documented_commands() -> None:
    found = {" ".join(path) for path in COMMANDS}
    assert {"up", "down", "status", "demo", "dims load", "cdc register", "serve"} <= found


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "lambdapipe")
def test_every_command_shows_its_help(path: tuple[str, ...]) -> None:
    outcome = CliRunner().invoke(app, [*path, "--help"])
    assert outcome.exit_code == 0, outcome.output
    assert "Usage:" in outcome.output


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)
