"""Drift tests for artifacts derived from the schemas (Spark StructType, ClickHouse columns).

A schema change must be followed by a deliberate snapshot update, reviewed in the same commit:
`UPDATE_SNAPSHOTS=1 uv run pytest tests/unit/contracts/test_derived.py`.
"""

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from lambdapipe.contracts.clickhouse import (
    USER_TIER_COLUMN,
    clickhouse_columns,
    enriched_columns,
    enriched_tiers,
)
from lambdapipe.contracts.registry import ENTITIES, EVENT_TYPES, schemas_dir
from lambdapipe.contracts.spark import spark_schema

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _matches_snapshot(name: str, current: Any) -> None:
    path = SNAPSHOTS / f"{name}.json"
    rendered = orjson.dumps(current, option=orjson.OPT_INDENT_2) + b"\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_bytes(rendered)
    assert path.exists(), f"no snapshot {path}; create it with UPDATE_SNAPSHOTS=1"
    assert orjson.loads(path.read_bytes()) == orjson.loads(rendered), (
        f"{name} changed: review it, then update with UPDATE_SNAPSHOTS=1"
    )


def _declared_properties(entity: str) -> set[str]:
    """Property names read straight from the files, without the compiler."""
    root = schemas_dir()
    if entity != "user_event":
        return set(orjson.loads((root / "entities" / f"{entity}.json").read_bytes())["properties"])
    names = set(orjson.loads((root / "events" / "_base.json").read_bytes())["properties"])
    for event_type in EVENT_TYPES:
        names |= set(
            orjson.loads((root / "events" / f"{event_type}.json").read_bytes())["properties"]
        )
    return names


@pytest.mark.parametrize("entity", ENTITIES)
def test_clickhouse_columns_snapshot(entity: str) -> None:
    _matches_snapshot(f"clickhouse_{entity}", [list(c) for c in clickhouse_columns(entity)])


@pytest.mark.parametrize("entity", ENTITIES)
def test_spark_schema_snapshot(entity: str) -> None:
    _matches_snapshot(f"spark_{entity}", spark_schema(entity).jsonValue())


@pytest.mark.parametrize("entity", ENTITIES)
def test_derived_artifacts_cover_exactly_the_declared_properties(entity: str) -> None:
    declared = _declared_properties(entity)
    assert {name for name, _ in clickhouse_columns(entity)} == declared
    assert set(spark_schema(entity).fieldNames()) == declared


def test_clickhouse_types_follow_the_common_definitions() -> None:
    columns = dict(clickhouse_columns("user_event"))
    assert columns["event_id"] == "UUID"
    assert columns["product_id"] == "Nullable(UUID)"
    assert columns["ip_address"] == "IPv4"
    assert columns["device_type"] == "LowCardinality(String)"
    assert columns["timestamp"].startswith("DateTime64(3")
    assert columns["amount"] == "Nullable(Decimal(10, 2))"
    assert columns["quantity"] == "Nullable(UInt8)"
    assert columns["referrer"] == "Nullable(String)"
    user = dict(clickhouse_columns("user"))
    assert user["last_login"].startswith("Nullable(DateTime64(3")
    assert user["is_active"] == "Bool"
    assert user["date_of_birth"] == "Date32"


def test_spark_schema_keeps_wire_types() -> None:
    fields = {f.name: f for f in spark_schema("user_event").fields}
    assert fields["amount"].dataType.simpleString() == "string"
    assert fields["timestamp"].dataType.simpleString() == "string"
    assert fields["quantity"].dataType.simpleString() == "int"
    assert not fields["event_id"].nullable
    assert fields["product_id"].nullable
    assert fields["referrer"].nullable


def test_enriched_tables_add_a_never_null_tier() -> None:
    assert (
        enriched_columns("user_event")[-1]
        == USER_TIER_COLUMN
        == ("user_tier", "LowCardinality(String)")
    )
    assert enriched_tiers() == ("bronze", "silver", "gold", "platinum", "unknown")
