"""Curated tables follow the contracts: an optional field added to a schema adds a column.

The catalog is a real pyiceberg SqlCatalog on SQLite with a local warehouse (the small real
adapter, not a mock); the schemas are a copy of schemas/ that the test evolves.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lambdapipe.contracts.registry import SchemaRegistry, schemas_dir
from lambdapipe.lake.curated import curated_schema, ensure_curated_events
from lambdapipe.settings import Settings


@pytest.fixture
def catalog(tmp_path: Path) -> SqlCatalog:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    with SqlCatalog(
        "lakehouse", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{warehouse}"
    ) as catalog:
        yield catalog


def _schemas(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), copy)
    return copy


def test_columns_are_typed_from_the_contracts() -> None:
    schema = curated_schema()
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("event_id").type == pa.string()
    assert all(f.nullable for f in schema)
    money = [f for f in curated_schema("transaction") if f.name == "total_amount"]
    assert money[0].type == pa.decimal128(10, 2)


def test_an_added_optional_field_adds_a_column_old_rows_read_null(
    catalog: SqlCatalog, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    schemas = _schemas(tmp_path)
    table = ensure_curated_events(catalog, settings, SchemaRegistry(schemas))
    assert "coupon_code" not in table.schema().column_names
    # the batch layer's layout (days(timestamp)): its day overwrite replaces one day, not all
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("timestamp_day", "day")]
    before = pa.Table.from_pylist(
        [
            {
                "event_id": "11da0497-c204-4db7-b49e-41b9c3a969ad",
                "event_type": "page_view",
                "timestamp": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
            }
        ],
        schema=curated_schema("user_event", SchemaRegistry(schemas)),
    )
    table.append(before)

    page_view = schemas / "events" / "page_view.json"
    doc = orjson.loads(page_view.read_bytes())
    doc["properties"]["coupon_code"] = {"type": "string", "maxLength": 32}
    page_view.write_bytes(orjson.dumps(doc))
    evolved = ensure_curated_events(catalog, settings, SchemaRegistry(schemas))

    assert "coupon_code" in evolved.schema().column_names
    assert not evolved.schema().find_field("coupon_code").required
    rows = evolved.scan().to_arrow().to_pylist()
    assert [r["coupon_code"] for r in rows] == [None]
    assert rows[0]["event_id"] == "11da0497-c204-4db7-b49e-41b9c3a969ad"
    # a second run with no schema change changes nothing
    again = ensure_curated_events(catalog, settings, SchemaRegistry(schemas))
    assert again.schema().schema_id == evolved.schema().schema_id
