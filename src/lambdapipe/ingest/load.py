"""`lambdapipe dims load`: the generator's population into PostgreSQL, in bulk, idempotently.

Rows are COPied into a temporary table and inserted with ON CONFLICT DO NOTHING: a second load
changes nothing, and rows already present are kept as they are, because `dims churn` (or the
shop itself) may have changed them since, and overwriting them would rewrite history that CDC
has already published. Loading more users than before adds only the new ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lambdapipe.generator.population import products, users
from lambdapipe.ingest.db import connect_app
from lambdapipe.ingest.migrate import migrate
from lambdapipe.settings import Settings

USER_COLUMNS = (
    "user_id", "email", "first_name", "last_name", "date_of_birth", "registration_date",
    "country", "city", "tier", "is_active", "last_login", "updated_at",
)  # fmt: skip
PRODUCT_COLUMNS = (
    "product_id", "name", "category", "subcategory", "brand", "price", "cost", "is_active",
    "created_at", "updated_at",
)  # fmt: skip
CHUNK = 20_000

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class LoadResult:
    table: str
    offered: int
    inserted: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.offered / self.seconds if self.seconds else 0.0


def load_table(
    settings: Settings,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    progress: Progress | None = None,
) -> LoadResult:
    """COPY rows into `table`, keeping rows whose key already exists."""
    began = time.perf_counter()
    inserted = 0
    column_list = ", ".join(columns)
    with connect_app(settings) as conn:
        conn.execute(f"CREATE TEMP TABLE staging (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            with conn.cursor().copy(f"COPY staging ({column_list}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
            if progress:
                progress(table, len(chunk))
        cursor = conn.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM staging "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )
        inserted = cursor.rowcount
        conn.commit()
    return LoadResult(table, len(rows), inserted, time.perf_counter() - began)


def load_dimensions(
    settings: Settings, n_users: int, n_products: int, seed: int, progress: Progress | None = None
) -> list[LoadResult]:
    """Migrate, then load the first n users and m products of the population of `seed`."""
    migrate(settings)
    user_rows = [tuple(u.as_record()[c] for c in USER_COLUMNS) for u in users(n_users, seed)]
    product_rows = [
        tuple(p.as_record()[c] for c in PRODUCT_COLUMNS) for p in products(n_products, seed)
    ]
    return [
        load_table(settings, "users", USER_COLUMNS, user_rows, progress),
        load_table(settings, "products", PRODUCT_COLUMNS, product_rows, progress),
    ]
