"""The dimension tables of the serving store: products and users as people read them.

Kept current from the Debezium CDC topics by the speed layer (`speed/dimensions.py`): one row
per change, `ReplacingMergeTree(version)` with `version` = the change's PostgreSQL LSN, so a
replayed or out-of-order write never replaces a newer row. A deleted row stays, with
`deleted = true` and its last values (sales history still has a name). Queries read them with
`FINAL` for the keys they show; a key the dimension does not know reads as its id.

Columns are the contracts' (`lambdapipe.contracts.clickhouse`), the ones dashboards need: no
personal data (e-mail, names, birth date, city) reaches the serving store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lambdapipe.contracts.clickhouse import Column, clickhouse_columns

VERSION: Final[Column] = ("version", "UInt64")
DELETED: Final[Column] = ("deleted", "Bool")


@dataclass(frozen=True)
class DimensionTable:
    """A dimension: its CDC source table, key and the contract fields it keeps."""

    name: str
    source: str
    key: str
    fields: tuple[str, ...]

    @property
    def columns(self) -> tuple[Column, ...]:
        """(name, ClickHouse type): the key, the kept fields, then `deleted` and `version`."""
        types = dict(clickhouse_columns(self.source.removesuffix("s")))
        return (
            *((name, types[name]) for name in (self.key, *self.fields)),
            DELETED,
            VERSION,
        )

    def ddl(self) -> str:
        """CREATE TABLE (idempotent): the newest version of each key wins at merges and FINAL."""
        cols = ",\n    ".join(f"`{name}` {kind}" for name, kind in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {cols}\n)\n"
            f"ENGINE = ReplacingMergeTree(version)\n"
            f"ORDER BY ({self.key})"
        )


PRODUCTS_DIM: Final = DimensionTable(
    "products_dim",
    "products",
    "product_id",
    ("name", "category", "subcategory", "brand", "price", "is_active", "updated_at"),
)
USERS_DIM: Final = DimensionTable(
    "users_dim",
    "users",
    "user_id",
    ("tier", "country", "registration_date", "is_active", "updated_at"),
)
DIMENSIONS: Final = (USERS_DIM, PRODUCTS_DIM)


def dimension_statements() -> list[str]:
    """Every statement that builds the dimension tables."""
    return [dimension.ddl() for dimension in DIMENSIONS]


# The catalogue's names, FINAL: what `LEFT JOIN ... ON d.product_id = <alias>.product_id`
# reads. `known` is false (the default of a missing row) for a product the dimension has not seen.
PRODUCT_NAMES: Final = """(
    SELECT product_id, name, category, true AS known
    FROM products_dim FINAL
)"""
