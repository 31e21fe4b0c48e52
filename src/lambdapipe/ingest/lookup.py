"""Dimension lookups with a connection pool and a cache, and the "enrich with defaults" rule.

An unknown user enriches to tier `unknown` and an unknown product to category `unknown`:
an event is never dropped for want of a dimension row. Cached answers live `ttl_s` seconds
(unknown keys too, so a flood of unknown ids does not hammer the database).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable

from psycopg_pool import ConnectionPool

from lambdapipe.settings import Settings

UNKNOWN = "unknown"


class _TtlCache:
    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries, self.ttl_s = max_entries, ttl_s
        self.entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: str, value: str) -> None:
        self.entries[key] = (time.monotonic() + self.ttl_s, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


class DimensionLookup:
    """Tier of a user and category of a product, batched, pooled and cached."""

    def __init__(
        self,
        settings: Settings,
        ttl_s: float = 30.0,
        max_entries: int = 200_000,
        pool_size: int = 4,
    ) -> None:
        pg = settings.postgres
        self.pool = ConnectionPool(
            conninfo="",
            kwargs={
                "host": pg.host,
                "port": pg.port,
                "user": pg.app_user,
                "password": pg.app_password.get_secret_value(),
                "dbname": pg.app_database,
                "autocommit": True,
            },
            min_size=1,
            max_size=pool_size,
            open=True,
        )
        self.tiers = _TtlCache(max_entries, ttl_s)
        self.categories = _TtlCache(max_entries, ttl_s)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> DimensionLookup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def user_tiers(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Tier per user id; `unknown` for ids not in the users table."""
        return self._lookup(
            user_ids,
            self.tiers,
            "SELECT user_id::text, tier FROM users WHERE user_id = ANY(%s::uuid[])",
        )

    def product_categories(self, product_ids: Iterable[str]) -> dict[str, str]:
        """Category per product id; `unknown` for ids not in the products table."""
        return self._lookup(
            product_ids,
            self.categories,
            "SELECT product_id::text, category FROM products WHERE product_id = ANY(%s::uuid[])",
        )

    def _lookup(self, keys: Iterable[str], cache: _TtlCache, query: str) -> dict[str, str]:
        result: dict[str, str] = {}
        missing = []
        for key in set(keys):
            cached = cache.get(key)
            if cached is None:
                missing.append(key)
            else:
                result[key] = cached
        if missing:
            valid = [k for k in missing if _is_uuid(k)]
            found: dict[str, str] = {}
            if valid:
                with self.pool.connection() as conn:
                    found = {str(k): str(v) for k, v in conn.execute(query, (valid,)).fetchall()}
            for key in missing:
                value = found.get(key, UNKNOWN)
                cache.put(key, value)
                result[key] = value
        return result


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
