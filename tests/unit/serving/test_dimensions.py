"""The dimension tables in the real engine: written from Debezium changes by the speed layer's
state (ordering, replays, deletes, failed writes) and joined by the top-products answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from bench.serving_sample import make_batch
from lambdapipe.serving import queries
from lambdapipe.serving.dimensions import DIMENSIONS, PRODUCTS_DIM, USERS_DIM
from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.settings import Settings
from lambdapipe.speed.dimensions import Dimensions, DimensionState
from lambdapipe.speed.enrich import enrich_with_tier
from lambdapipe.speed.sink import ServingSink, StoreUnavailable
from tests.unit.serving.loading import load

PRODUCT = "0b9e3f8a-0000-4000-8000-000000000001"
USER = "0b9e3f8a-0000-4000-8000-0000000000aa"


def product(name: str, **changes: Any) -> dict[str, Any]:
    """A products row as Debezium's JSON converter sends it (decimals as strings)."""
    return {
        "product_id": PRODUCT,
        "name": name,
        "category": "Home",
        "subcategory": "Lighting",
        "brand": "Lumen",
        "price": "24.90",
        "cost": "11.00",
        "is_active": True,
        "created_at": "2026-11-30T08:00:00.000000Z",
        "updated_at": "2026-12-01T09:30:00.123456Z",
        **changes,
    }


def user(tier: str, user_id: str = USER) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Byron",
        "date_of_birth": 3000,
        "registration_date": 20_000,
        "country": "GB",
        "city": "London",
        "tier": tier,
        "is_active": True,
        "last_login": None,
        "updated_at": "2026-12-01T09:30:00.000000Z",
    }


def change(op: str, lsn: int, before: Any = None, after: Any = None) -> dict[str, Any]:
    return {"op": op, "before": before, "after": after, "source": {"lsn": lsn, "ts_ms": 1}}


@pytest.fixture
def dims(store: EmbeddedStore) -> Iterator[EmbeddedStore]:
    """The store with empty dimension tables, emptied again afterwards (the engine is shared)."""
    for dimension in DIMENSIONS:
        store.execute(f"TRUNCATE TABLE {dimension.name}")
    yield store
    for dimension in DIMENSIONS:
        store.execute(f"TRUNCATE TABLE {dimension.name}")


@pytest.fixture
def state() -> Iterator[Dimensions]:
    """The speed layer's dimension state; its Kafka consumer is never asked for anything."""
    dimensions = Dimensions(Settings(kafka={"bootstrap_servers": "127.0.0.1:1"}))  # type: ignore[arg-type]
    yield dimensions
    dimensions.close()


def writer(store: EmbeddedStore) -> Callable[[str, pa.Table], int]:
    """What the micro-batch writer hands `write_changes`: the sink, no token."""
    sink = ServingSink(store, retry_s=0)
    return lambda table, rows: sink.write(table, rows)


def final(store: EmbeddedStore, table: str) -> list[dict[str, Any]]:
    return store.query_rows(f"SELECT * FROM {table} FINAL ORDER BY version")


def test_tables_have_the_contract_columns_and_keep_the_newest_version(dims: EmbeddedStore) -> None:
    for dimension in DIMENSIONS:
        rows = dims.query_rows(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String} ORDER BY position",
            {"t": dimension.name},
        )
        assert [(r["name"], r["type"]) for r in rows] == list(dimension.columns)
        (engine,) = dims.query_rows(
            "SELECT engine_full FROM system.tables WHERE name = {t:String}", {"t": dimension.name}
        )
        assert engine["engine_full"].startswith("ReplacingMergeTree(version)")
    assert "email" not in dict(USERS_DIM.columns)  # no personal data in the serving store


def test_changes_reach_the_table_with_typed_values(dims: EmbeddedStore, state: Dimensions) -> None:
    assert state.products.apply(change("r", 100, after=product("Desk lamp")))
    assert state.write_changes(writer(dims)) == {"products_dim": 1}
    (row,) = final(dims, "products_dim")
    assert str(row["product_id"]) == PRODUCT
    assert (row["name"], row["category"], str(row["price"])) == ("Desk lamp", "Home", "24.90")
    assert row["updated_at"] == datetime(2026, 12, 1, 9, 30, 0, 123000, tzinfo=UTC)
    assert (row["deleted"], row["version"]) == (False, 100)
    assert state.write_changes(writer(dims)) == {}  # nothing changed since: nothing written


def test_an_older_or_replayed_change_never_regresses_a_row(
    dims: EmbeddedStore, state: Dimensions
) -> None:
    state.products.apply(change("r", 100, after=product("Desk lamp")))
    assert state.products.apply(change("u", 300, product("Desk lamp"), product("Lamp v3")))
    assert not state.products.apply(change("u", 200, product("Desk lamp"), product("Lamp v2")))
    assert not state.products.apply(change("u", 300, product("Desk lamp"), product("Lamp v3")))
    state.write_changes(writer(dims))
    state.write_changes(writer(dims))
    # a second writer that read less (a job restarted on a replay) writes an older version later
    behind = DimensionState(PRODUCTS_DIM)
    behind.apply(change("u", 200, product("Desk lamp"), product("Lamp v2")))
    writer(dims)("products_dim", behind.changed()[0])
    writer(dims)("products_dim", behind.changed()[0])
    assert [(r["name"], r["version"]) for r in final(dims, "products_dim")] == [("Lamp v3", 300)]
    dims.execute("OPTIMIZE TABLE products_dim FINAL")  # merges keep the same row
    rows = dims.query_rows("SELECT name, version FROM products_dim")
    assert rows == [{"name": "Lamp v3", "version": 300}]


def test_a_delete_keeps_the_last_values_and_the_tombstone_is_ignored(
    dims: EmbeddedStore, state: Dimensions
) -> None:
    state.products.apply(change("r", 100, after=product("Desk lamp")))
    assert state.products.apply(change("d", 400, before=product("Desk lamp")))
    assert not state.products.apply(None)  # the tombstone after a delete
    state.write_changes(writer(dims))
    (row,) = final(dims, "products_dim")
    assert (row["name"], row["deleted"], row["version"]) == ("Desk lamp", True, 400)
    # re-created with the same key later: alive again
    state.products.apply(change("c", 500, after=product("Desk lamp II")))
    state.write_changes(writer(dims))
    (row,) = final(dims, "products_dim")
    assert (row["name"], row["deleted"]) == ("Desk lamp II", False)


def test_users_tiers_follow_changes_and_deleted_users_enrich_as_unknown(
    dims: EmbeddedStore, state: Dimensions
) -> None:
    other = "0b9e3f8a-0000-4000-8000-0000000000bb"
    state.users.apply(change("r", 10, after=user("bronze")))
    state.users.apply(change("r", 10, after=user("silver", other)))
    events = pa.table({"user_id": [USER, other, "nobody"]})
    tiers = enrich_with_tier(events, state.tier_table()).column("user_tier").to_pylist()
    assert tiers == ["bronze", "silver", "unknown"]
    state.users.apply(change("u", 20, user("bronze"), user("gold")))
    state.users.apply(change("d", 30, before=user("silver", other)))
    tiers = enrich_with_tier(events, state.tier_table()).column("user_tier").to_pylist()
    assert tiers == ["gold", "unknown", "unknown"]
    assert state.write_changes(writer(dims)) == {"users_dim": 2}
    rows = {str(r["user_id"]): r for r in final(dims, "users_dim")}
    assert (rows[USER]["tier"], rows[USER]["deleted"]) == ("gold", False)
    assert (rows[other]["tier"], rows[other]["deleted"]) == ("silver", True)
    assert rows[USER]["registration_date"].isoformat() == "2024-10-04"  # day 20,000


def test_a_failed_write_leaves_the_rows_pending(dims: EmbeddedStore, state: Dimensions) -> None:
    state.products.apply(change("r", 100, after=product("Desk lamp")))

    def refuse(table: str, rows: pa.Table) -> int:
        raise StoreUnavailable("store down")

    with pytest.raises(StoreUnavailable):
        state.write_changes(refuse)
    assert final(dims, "products_dim") == []
    assert state.write_changes(writer(dims)) == {"products_dim": 1}
    assert [r["name"] for r in final(dims, "products_dim")] == ["Desk lamp"]


def test_top_products_carry_names_from_the_dimension(
    dims: EmbeddedStore, state: Dimensions
) -> None:
    load(dims, make_batch(5_000, seed=41, span_s=3_600), "dims:names")
    today = datetime.now(UTC).date()
    span = (today - timedelta(days=1), today)
    first, second, *_ = queries.top_products(dims, *span, "revenue", 5)
    # unknown to the dimension: the id, no category
    assert (first["name"], first["category"]) == (first["product_id"], None)
    state.products.apply(
        change("r", 100, after=product("Desk lamp", product_id=first["product_id"]))
    )
    state.products.apply(
        change("r", 100, after=product("Rug", product_id=second["product_id"], category="Decor"))
    )
    state.write_changes(writer(dims))
    named = queries.top_products(dims, *span, "revenue", 5)
    assert [(r["name"], r["category"]) for r in named[:2]] == [
        ("Desk lamp", "Home"),
        ("Rug", "Decor"),
    ]
    assert all(r["name"] == r["product_id"] for r in named[2:])
    # the numbers are the same with or without names; a rename shows at the next query
    strip = ("name", "category")
    assert [{k: v for k, v in r.items() if k not in strip} for r in named] == [
        {k: v for k, v in r.items() if k not in strip} for r in (first, second, *_)
    ]
    renamed = product("Desk lamp pro", product_id=first["product_id"])
    state.products.apply(change("u", 200, None, renamed))
    state.write_changes(writer(dims))
    assert queries.top_products(dims, *span, "revenue", 1)[0]["name"] == "Desk lamp pro"
