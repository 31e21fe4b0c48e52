"""The contracts in the real schema registry (Apicurio, Confluent-compatible API)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lambdapipe.contracts.registry import SchemaRegistry, schemas_dir
from lambdapipe.contracts.subjects import (
    COMPATIBILITY,
    OPEN_FORM_HINT,
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


def add_required_field(schema: dict[str, Any]) -> None:
    add_optional_field(schema)
    schema["required"].append("coupon_code")


def remove_required_field(schema: dict[str, Any]) -> None:
    schema["required"].remove("payment_method")
    del schema["properties"]["payment_method"]


def change_field_type(schema: dict[str, Any]) -> None:
    schema["properties"]["quantity"] = {"type": "string"}


def remove_event_field(schema: dict[str, Any]) -> None:
    schema["required"].remove("product_id")
    del schema["properties"]["product_id"]


def require_optional_base_field(schema: dict[str, Any]) -> None:
    schema["required"].append("referrer")


TRANSACTION = "entities/transaction.json"
PAGE_VIEW = "events/page_view.json"
PURCHASE = "events/purchase.json"
BASE = "events/_base.json"
EVENTS = "entities/user_event.json"  # every event type's subject


def evolved_tree(tmp_path: Path, edit: Edit, schema_file: str = TRANSACTION) -> Path:
    """A copy of schemas/ with one edit to one schema file."""
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root)
    path = root / schema_file
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
        COLUMNS="400",  # the table's details on one line each
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


def test_registered_event_models_are_closed(registered: Settings) -> None:
    latest = httpx.get(
        f"{registered.registry.ccompat}/subjects/{registered.kafka.events_topic}-value"
        "/versions/latest",
        timeout=10,
    ).json()
    schema = json.loads(latest["schema"])
    assert schema == inline("entities/user_event.json")
    assert "unevaluatedProperties" not in latest["schema"] and "allOf" not in latest["schema"]
    assert [model["additionalProperties"] for model in schema["oneOf"]] == [False] * 9


@pytest.mark.parametrize("schema_file", [TRANSACTION, PAGE_VIEW, PURCHASE, BASE])
def test_adding_an_optional_field_is_accepted(
    registered: Settings, tmp_path: Path, schema_file: str
) -> None:
    root = evolved_tree(tmp_path, add_optional_field, schema_file)
    result = schemas_check(registered, root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INCOMPATIBLE" not in result.stdout


@pytest.mark.parametrize(
    ("edit", "schema_file"),
    [
        (remove_required_field, TRANSACTION),
        (change_field_type, TRANSACTION),
        (add_required_field, TRANSACTION),
        (add_required_field, PAGE_VIEW),
        (change_field_type, PURCHASE),
        (remove_event_field, PURCHASE),
        (require_optional_base_field, BASE),
    ],
)
def test_breaking_changes_are_refused(
    registered: Settings, tmp_path: Path, edit: Edit, schema_file: str
) -> None:
    root = evolved_tree(tmp_path, edit, schema_file)
    result = schemas_check(registered, root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "INCOMPATIBLE" in result.stdout and "Traceback" not in result.stderr

    entity = EVENTS if schema_file.startswith("events/") else schema_file
    subject = {path: subject for subject, path in subjects(registered).items()}[entity]
    client = RegistryClient(registered.registry.ccompat)
    with pytest.raises(Problem, match="refuses this schema as incompatible"):
        client.register(subject, inline(entity, SchemaRegistry(root)))


@pytest.fixture
def open_form_registered(registered: Settings) -> Iterator[tuple[Settings, str]]:
    """The events subject as an earlier lambdapipe left it: one version, its event models open."""
    subject = f"{registered.kafka.events_topic}-value"
    url = f"{registered.registry.ccompat}/subjects/{subject}"
    for params in ({}, {"permanent": "true"}):
        httpx.delete(url, params=params, timeout=10).raise_for_status()
    config = {"compatibility": COMPATIBILITY}
    httpx.put(
        f"{registered.registry.ccompat}/config/{subject}", json=config, timeout=10
    ).raise_for_status()
    open_form = {"schemaType": "JSON", "schema": json.dumps(inline(EVENTS, close=False))}
    httpx.post(f"{url}/versions", json=open_form, timeout=10).raise_for_status()
    yield registered, subject
    register_all(registered)  # whatever the test left, the next one finds the closed form


def test_register_replaces_the_open_form_of_the_same_contract(
    open_form_registered: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, subject = open_form_registered
    before = schemas_check(settings, schemas_dir())
    assert before.returncode == 0, before.stdout + before.stderr
    assert "replaces it" in before.stdout

    register_all(settings)
    url = f"{settings.registry.ccompat}/subjects/{subject}"
    assert httpx.get(f"{url}/versions", timeout=10).json() == [1]
    latest = httpx.get(f"{url}/versions/latest", timeout=10).json()
    assert json.loads(latest["schema"]) == inline(EVENTS)
    config = httpx.get(f"{settings.registry.ccompat}/config/{subject}", timeout=10).json()
    assert config["compatibilityLevel"] == COMPATIBILITY
    evolved = schemas_check(settings, evolved_tree(tmp_path, add_optional_field, PAGE_VIEW))
    assert evolved.returncode == 0, evolved.stdout + evolved.stderr


def test_an_evolved_contract_is_refused_over_the_open_form_with_what_to_do(
    open_form_registered: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, subject = open_form_registered
    root = evolved_tree(tmp_path, add_optional_field, PAGE_VIEW)
    result = schemas_check(settings, root)
    assert result.returncode == 1 and "INCOMPATIBLE" in result.stdout, result.stdout
    assert "open form" in result.stdout

    client = RegistryClient(settings.registry.ccompat)
    with pytest.raises(Problem, match="refuses this schema as incompatible") as refused:
        client.register(subject, inline(EVENTS, SchemaRegistry(root)))
    assert refused.value.hint == OPEN_FORM_HINT
    versions = httpx.get(f"{settings.registry.ccompat}/subjects/{subject}/versions", timeout=10)
    assert versions.json() == [1]  # the open version is still there: nothing was replaced
