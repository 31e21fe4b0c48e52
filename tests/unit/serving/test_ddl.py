"""Every table and view exists with exactly the specified types, derived from the contracts."""

from __future__ import annotations

import pytest

from lambdapipe.contracts.clickhouse import enriched_columns
from lambdapipe.serving.ddl import MATERIALIZED_VIEWS, TABLES
from lambdapipe.serving.embedded import EmbeddedStore

# Written out by hand from issue 6: if the schemas or the derivation drift, this fails.
REQUIRED_EVENT_TYPES = {
    "event_id": "UUID",
    "user_id": "UUID",
    "session_id": "UUID",
    "ip_address": "IPv4",
    "event_type": "LowCardinality(String)",
    "device_type": "LowCardinality(String)",
    "browser": "LowCardinality(String)",
    "user_tier": "LowCardinality(String)",
    "product_id": "Nullable(UUID)",
    "transaction_id": "Nullable(UUID)",
    "amount": "Nullable(Decimal(10, 2))",
    "timestamp": "DateTime64(3, 'UTC')",
}
REQUIRED_TRANSACTION_TYPES = {
    "transaction_id": "UUID",
    "user_id": "UUID",
    "product_id": "UUID",
    "unit_price": "Decimal(10, 2)",
    "total_amount": "Decimal(10, 2)",
    "discount_amount": "Decimal(10, 2)",
    "tax_amount": "Decimal(10, 2)",
    "status": "LowCardinality(String)",
    "payment_method": "LowCardinality(String)",
    "timestamp": "DateTime64(3, 'UTC')",
}
REQUIRED_SESSION_TYPES = {
    "session_id": "UUID",
    "user_id": "UUID",
    "session_start": "DateTime64(3, 'UTC')",
    "session_end": "DateTime64(3, 'UTC')",
    "revenue": "Decimal(10, 2)",
    "user_tier": "LowCardinality(String)",
    "converted": "Bool",
}


def columns(store: EmbeddedStore, table: str) -> list[tuple[str, str]]:
    rows = store.query_rows(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String} ORDER BY position",
        {"t": table},
    )
    return [(row["name"], row["type"]) for row in rows]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_tables_have_their_declared_columns(store: EmbeddedStore, table: object) -> None:
    assert columns(store, table.name) == list(table.columns)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("table", "entity"),
    [("user_events_realtime", "user_event"), ("transactions_realtime", "transaction")],
)
def test_realtime_tables_match_the_contracts(store: EmbeddedStore, table: str, entity: str) -> None:
    expected = [*enriched_columns(entity), ("ingested_at", "DateTime64(3, 'UTC')")]
    assert columns(store, table) == expected


@pytest.mark.parametrize(
    ("table", "required"),
    [
        ("user_events_realtime", REQUIRED_EVENT_TYPES),
        ("transactions_realtime", REQUIRED_TRANSACTION_TYPES),
        ("user_sessions_realtime", REQUIRED_SESSION_TYPES),
    ],
)
def test_issue_types(store: EmbeddedStore, table: str, required: dict[str, str]) -> None:
    actual = dict(columns(store, table))
    assert {name: actual.get(name) for name in required} == required


@pytest.mark.parametrize("view", MATERIALIZED_VIEWS, ids=lambda v: v.name)
def test_views_feed_aggregating_targets(store: EmbeddedStore, view: object) -> None:
    target = view.target  # type: ignore[attr-defined]
    assert columns(store, target) == list(view.columns)  # type: ignore[attr-defined]
    engines = store.query_rows(
        "SELECT name, engine, partition_key, sorting_key FROM system.tables "
        "WHERE database = currentDatabase() AND name IN ({names:Array(String)})",
        {"names": [view.name, target]},  # type: ignore[attr-defined]
    )
    by_name = {row["name"]: row for row in engines}
    assert by_name[view.name]["engine"] == "MaterializedView"  # type: ignore[attr-defined]
    assert by_name[target]["engine"] == "AggregatingMergeTree"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_tables_partition_by_month_with_ttl(store: EmbeddedStore, table: object) -> None:
    row = store.query_rows(
        "SELECT partition_key, create_table_query FROM system.tables "
        "WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table.name},  # type: ignore[attr-defined]
    )[0]
    assert row["partition_key"] == f"toYYYYMM({table.time_column})"  # type: ignore[attr-defined]
    assert "TTL toDateTime" in row["create_table_query"]
    assert "non_replicated_deduplication_window" in row["create_table_query"]
