"""Curated tables: typed columns derived from the contracts (schemas/), evolved with them.

The raw tables keep bytes and never change; a curated table holds parsed records, one column
per field of the schemas (all nine event types in `curated.events`). When a schema gains an
optional field, `ensure_curated_events` adds the column (Iceberg schema evolution: a metadata
change, no rewrite) and rows written before read it as null. Every column is optional: the
contracts evolve by adding optional fields only (`lambdapipe schemas check`), and a column
Iceberg adds to existing rows cannot be required.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pyarrow as pa
from pyiceberg.transforms import DayTransform

from lambdapipe.contracts.registry import SchemaRegistry, default_registry
from lambdapipe.contracts.rules import FieldRule, entity_records, merged_fields
from lambdapipe.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

_INT32: Final = 2**31


def arrow_type(rule: FieldRule) -> pa.DataType:
    """The typed column of one contract field (money never as a float)."""
    if rule.kind == "money":
        return pa.decimal128(10, 2)
    if rule.kind == "timestamp" or rule.format == "date-time":
        return pa.timestamp("us", tz="UTC")
    if rule.kind == "date" or rule.format == "date":
        return pa.date32()
    if rule.json_type == "boolean":
        return pa.bool_()
    if rule.json_type == "integer":
        low, high = rule.minimum, rule.maximum
        fits = low is not None and high is not None and -_INT32 <= low <= high < _INT32
        return pa.int32() if fits else pa.int64()
    if rule.json_type == "number":
        return pa.float64()
    return pa.string()


def curated_schema(entity: str = "user_event", registry: SchemaRegistry | None = None) -> pa.Schema:
    """The Arrow schema of a curated table: every field of the entity's records, optional."""
    records = entity_records(registry or default_registry(), entity)
    return pa.schema(
        [pa.field(rule.name, arrow_type(rule), nullable=True) for rule, _ in merged_fields(records)]
    )


def ensure_curated_events(
    catalog: Catalog, settings: Settings, registry: SchemaRegistry | None = None
) -> Table:
    """Create `curated.events` from the contracts, or add the columns new fields need."""
    namespace = settings.lake.curated_namespace
    identifier = f"{namespace}.events"
    schema = curated_schema("user_event", registry)
    catalog.create_namespace_if_not_exists(namespace)
    if not catalog.table_exists(identifier):
        created = catalog.create_table(
            identifier, schema=schema, properties={"format-version": "2"}
        )
        # the batch layer's layout (batch/tables.py: days(timestamp)): it replaces a day with
        # Spark's overwritePartitions, which on an unpartitioned table would replace every day
        with created.update_spec() as spec:
            spec.add_field("timestamp", DayTransform(), "timestamp_day")
        return catalog.load_table(identifier)
    table = catalog.load_table(identifier)
    known = set(table.schema().column_names)
    if any(name not in known for name in schema.names):
        with table.update_schema() as update:
            update.union_by_name(schema)
    return table
