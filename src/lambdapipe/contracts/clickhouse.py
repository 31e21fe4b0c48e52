"""ClickHouse column types derived from the schemas, for the serving store's tables."""

from typing import Final

from lambdapipe.contracts.registry import default_registry
from lambdapipe.contracts.rules import FieldRule, entity_records, merged_fields

Column = tuple[str, str]

USER_TIER_COLUMN: Final[Column] = ("user_tier", "LowCardinality(String)")
_UNSIGNED: Final = ((255, "UInt8"), (65_535, "UInt16"), (4_294_967_295, "UInt32"))


def _integer_type(rule: FieldRule) -> str:
    if rule.minimum is not None and rule.minimum >= 0 and rule.maximum is not None:
        return next((name for top, name in _UNSIGNED if rule.maximum <= top), "UInt64")
    return "Int64"


def column_type(rule: FieldRule, optional: bool) -> str:
    """The ClickHouse type of one field; `optional` fields become Nullable."""
    if rule.enum is not None:
        # ClickHouse only accepts LowCardinality around Nullable, not the other way round.
        return "LowCardinality(Nullable(String))" if optional else "LowCardinality(String)"
    if rule.format == "uuid":
        base = "UUID"
    elif rule.format == "ipv4":
        base = "IPv4"
    elif rule.format == "date-time":
        base = "DateTime64(3, 'UTC')"
    elif rule.format == "date":
        # Date stops at 1970; Date32 holds the birth dates of customers born before it.
        base = "Date32"
    elif rule.kind == "money":
        base = "Decimal(10, 2)"
    elif rule.json_type == "integer":
        base = _integer_type(rule)
    elif rule.json_type == "boolean":
        base = "Bool"
    else:
        base = "String"
    return f"Nullable({base})" if optional else base


def clickhouse_columns(entity: str) -> list[Column]:
    """(name, ClickHouse type) of every field of `entity`: user_event, user, product, transaction.

    For `user_event` the columns hold all nine event types, so type-specific fields are Nullable.
    """
    records = entity_records(default_registry(), entity)
    return [(rule.name, column_type(rule, optional)) for rule, optional in merged_fields(records)]


def enriched_columns(entity: str) -> list[Column]:
    """The columns of `entity` plus `user_tier`, as in the enriched realtime tables.

    The tier takes the values of `common.json#/$defs/enriched_tier`, `unknown` included, so it
    is never null.
    """
    return [*clickhouse_columns(entity), USER_TIER_COLUMN]


def enriched_tiers() -> tuple[str, ...]:
    """The values `user_tier` can take: the four tiers and `unknown`."""
    values: list[str] = default_registry().common_def("enriched_tier")["enum"]
    return tuple(values)
