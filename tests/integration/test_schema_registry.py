"""The contracts in the real schema registry (Apicurio, Confluent-compatible API)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lambdapipe.contracts.registry import SchemaRegistry, schemas_dir
from lambdapipe.contracts.subjects import (
    COMPATIBILITY,
    RegistryClient,
    inline,
    register_all,
    subjects,
)
from lambdapipe.errors import Problem
from lambdapipe.settings import Settings
from tests.stacks import LIB

pytestmark = pytest.mark.integration

Edit = Callable[[dict[str, Any]], None]


def add_optional_field(schema: dict[str, Any]) -> None:
    schema["properties"]["coupon_code"] = {"type": ["string", "null"], "maxLength": 32}


def remove_required_field(schema: dict[str, Any]) -> None:
    schema["required"].remove("payment_method")
    del schema["properties"]["payment_method"]


def change_field_type(schema: dict[str, Any]) -> None:
    schema["properties"]["quantity"] = {"type": "string"}


def evolved_tree(tmp_path: Path, edit: Edit) -> Path:
    """A copy of schemas/ with one edit to the transaction entity."""
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root)
    path = root / "entities" / "transaction.json"
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema, indent=2))
    return root


def schemas_check(settings: Settings, root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDAPIPE_")}
    env.update(
        LAMBDAPIPE_HOME=str(settings.home),
        LAMBDAPIPE_LIB_HOME=str(LIB),
        LAMBDAPIPE_PORT_OFFSET=str(settings.port_offset),
        LAMBDAPIPE_SCHEMAS_DIR=str(root),
    )
    return subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", "schemas", "check"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def registered(settings: Settings) -> Settings:
    register_all(settings)
    return settings


def test_register_is_idempotent_and_sets_compatibility(registered: Settings) -> None:
    first = register_all(registered)
    assert register_all(registered) == first
    assert set(first) == set(subjects(registered))
    for subject in first:
        config = httpx.get(f"{registered.registry.ccompat}/config/{subject}", timeout=10).json()
        assert config["compatibilityLevel"] == COMPATIBILITY


def test_registered_schema_is_the_inlined_contract(registered: Settings) -> None:
    latest = httpx.get(
        f"{registered.registry.ccompat}/subjects/{registered.kafka.transactions_topic}-value"
        "/versions/latest",
        timeout=10,
    ).json()
    assert json.loads(latest["schema"]) == inline("entities/transaction.json")
    assert "$ref" not in latest["schema"]


def test_adding_an_optional_field_is_accepted(registered: Settings, tmp_path: Path) -> None:
    root = evolved_tree(tmp_path, add_optional_field)
    result = schemas_check(registered, root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INCOMPATIBLE" not in result.stdout


@pytest.mark.parametrize("edit", [remove_required_field, change_field_type])
def test_breaking_changes_are_refused(registered: Settings, tmp_path: Path, edit: Edit) -> None:
    root = evolved_tree(tmp_path, edit)
    result = schemas_check(registered, root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "INCOMPATIBLE" in result.stdout and "Traceback" not in result.stderr

    client = RegistryClient(registered.registry.ccompat)
    subject = f"{registered.kafka.transactions_topic}-value"
    with pytest.raises(Problem, match="refuses this schema as incompatible"):
        client.register(subject, inline("entities/transaction.json", SchemaRegistry(root)))
