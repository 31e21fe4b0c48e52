"""`lambdapipe dims churn`: realistic dimension changes while traffic runs, so CDC has work.

Mix of changes (per change): tier moves 55% (upgrades twice as likely as downgrades), price
changes 25% (within -20%..+20%, never below cost), deactivations 5%, new users 15%. Each change
is its own committed transaction, as in the shop's OLTP.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from lambdapipe.errors import Problem
from lambdapipe.generator.population import TIERS
from lambdapipe.ingest.db import connect_app
from lambdapipe.settings import Settings

KINDS: tuple[str, ...] = ("tier", "price", "deactivate", "new_user")
WEIGHTS: tuple[float, ...] = (0.55, 0.25, 0.05, 0.15)


@dataclass
class ChurnResult:
    """What churn committed: counts by kind, and every (table, key, updated_at) it changed."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def next_tier(current: str, rng: random.Random) -> str:
    """One step up (2/3) or down (1/3) the tier ladder, staying on it."""
    i = TIERS.index(current)
    step = 1 if rng.random() < 2 / 3 else -1
    if not 0 <= i + step < len(TIERS):
        step = -step
    return TIERS[i + step]


def churn(
    settings: Settings,
    rate: float,
    duration_s: float | None = None,
    changes: int | None = None,
    seed: int = 0,
    on_change: Callable[[ChurnResult], None] | None = None,
) -> ChurnResult:
    """Commit `rate` changes per second for `duration_s` seconds or `changes` changes."""
    rng = random.Random(f"churn:{seed}")  # noqa: S311 (simulation, not security)
    result = ChurnResult()
    began = time.monotonic()
    with connect_app(settings, autocommit=True) as conn:
        user_ids = [str(r[0]) for r in conn.execute("SELECT user_id FROM users").fetchall()]
        product_ids = [
            str(r[0]) for r in conn.execute("SELECT product_id FROM products").fetchall()
        ]
        if not user_ids or not product_ids:
            raise Problem("no dimensions to churn", hint="run `lambdapipe dims load` first")
        n = 0
        while (changes is None or n < changes) and (
            duration_s is None or time.monotonic() - began < duration_s
        ):
            kind = rng.choices(KINDS, WEIGHTS)[0]
            if kind == "tier":
                user_id = rng.choice(user_ids)
                row = conn.execute(
                    "UPDATE users SET tier = CASE tier "
                    + " ".join(f"WHEN '{t}' THEN %s" for t in TIERS)
                    + " END WHERE user_id = %s RETURNING updated_at",
                    (*(next_tier(t, rng) for t in TIERS), user_id),
                ).fetchone()
                key = user_id
            elif kind == "price":
                key = rng.choice(product_ids)
                factor = Decimal(rng.randint(80, 120)) / 100
                row = conn.execute(
                    "UPDATE products SET price = GREATEST(cost, round(price * %s, 2)) "
                    "WHERE product_id = %s RETURNING updated_at",
                    (factor, key),
                ).fetchone()
            elif kind == "deactivate":
                key = rng.choice(user_ids)
                row = conn.execute(
                    "UPDATE users SET is_active = false WHERE user_id = %s RETURNING updated_at",
                    (key,),
                ).fetchone()
            else:
                key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                row = conn.execute(
                    "INSERT INTO users (user_id, email, first_name, last_name, registration_date,"
                    " country, city, tier) VALUES (%s, %s, 'New', 'Customer', current_date, 'US',"
                    " 'Chicago', 'bronze') RETURNING updated_at",
                    (key, f"new.{key}@example.com"),
                ).fetchone()
                user_ids.append(key)
            table = "products" if kind == "price" else "users"
            if row is not None:
                result.counts[kind] += 1
                result.changes.append((table, key, row[0].isoformat()))  # type: ignore[attr-defined]
            n += 1
            if on_change:
                on_change(result)
            if rate > 0:
                # pace against the schedule, not the previous change: no drift
                delay = began + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    result.seconds = time.monotonic() - began
    return result
