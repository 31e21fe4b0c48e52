"""`lambdapipe dims churn`: realistic dimension changes while traffic runs, so CDC has work.

Mix of changes (per change): tier moves 55% (upgrades twice as likely as downgrades), price
changes 25% (within -20%..+20%, never below cost), deactivations 5%, new users 15%. Each change
is its own committed transaction, as in the shop's OLTP.

With `watch_share`, tier moves pick only the watched users (`population.watched`: those whose
every event the generator's truth records), and with `log` every tier move is written, as it
commits, to a JSON-lines churn log with its commit time as Debezium reports it (`source.ts_ms`,
from PostgreSQL's commit timestamps): the truth re-tiered by that log is what the batch layer,
enriching as of event time, must show (docs/generator.md#tier-churn).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

import orjson
import psycopg

from lambdapipe.errors import Problem
from lambdapipe.generator.population import TIERS, watched
from lambdapipe.ingest.db import connect_app
from lambdapipe.settings import Settings

KINDS: tuple[str, ...] = ("tier", "price", "deactivate", "new_user")
WEIGHTS: tuple[float, ...] = (0.55, 0.25, 0.05, 0.15)
# a drawn id that exists is drawn again; this many misses in a row means something is wrong
NEW_USER_ATTEMPTS = 20


@dataclass
class ChurnResult:
    """What churn committed: counts by kind, and every (table, key, updated_at) it changed."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    # with a log: every tier move as (user_id, old tier, new tier, committed at, ms precision)
    tier_moves: list[tuple[str, str, str, datetime]] = field(default_factory=list)
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
    watch_share: float | None = None,
    log: Path | None = None,
) -> ChurnResult:
    """Commit `rate` changes per second for `duration_s` seconds or `changes` changes.

    The sequence is a function of the seed and of the shop it starts from: the same seed on the
    same database repeats itself, and a rerun on a database an earlier run changed draws anew.
    `watch_share`: tier moves only for the watched users; `log`: the churn log to write.
    """
    result = ChurnResult()
    began = time.monotonic()
    with connect_app(settings, autocommit=True) as conn, _opened(log) as journal:
        user_ids = [str(r[0]) for r in conn.execute("SELECT user_id FROM users").fetchall()]
        product_ids = [
            str(r[0]) for r in conn.execute("SELECT product_id FROM products").fetchall()
        ]
        if not user_ids or not product_ids:
            raise Problem("no dimensions to churn", hint="run `lambdapipe dims load` first")
        rng = churn_rng(seed, len(user_ids), len(product_ids))
        movable = (
            user_ids if watch_share is None else [u for u in user_ids if watched(u, watch_share)]
        )
        if not movable:
            raise Problem(
                f"no user of the {len(user_ids):,} is in the watched share {watch_share}",
                hint="give a larger --watch-share",
            )
        shop = Shop(conn, user_ids, set(user_ids), product_ids, movable, journal, result)
        if journal is not None:
            _start_log(shop)
        n = 0
        while (changes is None or n < changes) and (
            duration_s is None or time.monotonic() - began < duration_s
        ):
            kind = rng.choices(KINDS, WEIGHTS)[0]
            change = _commit(CHANGES[kind], shop, rng, result)
            if change is not None:
                result.counts[kind] += 1
                result.changes.append(change)
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


def _commit(
    make: Callable[[Shop, random.Random], Change | None],
    shop: Shop,
    rng: random.Random,
    result: ChurnResult,
) -> Change | None:
    """One change, with a database error turned into a Problem that says how far churn got."""
    try:
        return make(shop, rng)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Problem(
            f"churn stopped after {result.total:,} changes: {reason}",
            hint="check PostgreSQL (`lambdapipe status`, its log under .lambdapipe/logs/)",
        ) from exc


def churn_rng(seed: int, n_users: int, n_products: int) -> random.Random:
    """The change sequence's generator, seeded by the seed and the size of the shop."""
    # every earlier run that added users changed the size: a rerun does not replay its inserts
    return random.Random(f"churn:{seed}:{n_users}:{n_products}")  # noqa: S311 (simulation)


@dataclass
class Shop:
    """The open connection and the keys churn picks from (`taken`: every user id in use)."""

    conn: psycopg.Connection[tuple[object, ...]]
    user_ids: list[str]
    taken: set[str]
    product_ids: list[str]
    movable: list[str]  # the users whose tier may move (all, or the watched ones)
    journal: IO[bytes] | None = None  # the churn log
    result: ChurnResult | None = None


@contextmanager
def _opened(log: Path | None) -> Iterator[IO[bytes] | None]:
    if log is None:
        yield None
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as journal:
        yield journal


def _start_log(shop: Shop) -> None:
    """The log's first lines: each movable user's tier before churn changes anything (an earlier
    run may have moved it), after checking that commit times can be read back."""
    (on,) = shop.conn.execute("SHOW track_commit_timestamp").fetchone() or ("off",)
    if on != "on":
        raise Problem(
            "PostgreSQL does not record commit times (track_commit_timestamp is off), so churn "
            "cannot log when each tier move committed",
            hint="restart PostgreSQL with the stack's configuration: "
            "`lambdapipe down` then `lambdapipe up`",
        )
    movable = set(shop.movable)
    rows = shop.conn.execute("SELECT user_id::text, tier FROM users ORDER BY user_id").fetchall()
    for user_id, tier in rows:
        if str(user_id) in movable:
            _log(shop, {"user_id": str(user_id), "tier": str(tier)})


def _log(shop: Shop, line: dict[str, str]) -> None:
    if shop.journal is None:  # no --log
        return
    shop.journal.write(orjson.dumps(line) + b"\n")
    shop.journal.flush()  # a churn cut short keeps every move it committed


Change = tuple[str, str, str]


def move_tier(shop: Shop, rng: random.Random) -> Change | None:
    """One user one step up or down the tier ladder (logged with its commit time)."""
    user_id = rng.choice(shop.movable)
    row = shop.conn.execute(
        "UPDATE users AS u SET tier = CASE old.tier "  # noqa: S608
        + " ".join(f"WHEN '{t}' THEN %s" for t in TIERS)
        + " END FROM users AS old WHERE old.user_id = u.user_id AND u.user_id = %s"
        " RETURNING u.updated_at, old.tier, u.tier, u.xmin::text",
        (*(next_tier(t, rng) for t in TIERS), user_id),
    ).fetchone()
    if row is not None and shop.journal is not None:
        _, old, new, xid = row
        committed = committed_at(shop.conn, str(xid))
        _log(
            shop,
            {"user_id": user_id, "from": str(old), "to": str(new), "committed_at": iso(committed)},
        )
        if shop.result is not None:
            shop.result.tier_moves.append((user_id, str(old), str(new), committed))
    return _change("users", user_id, row[:1] if row is not None else None)


def committed_at(conn: psycopg.Connection[tuple[object, ...]], xid: str) -> datetime:
    """When transaction `xid` committed, to the millisecond below, as Debezium's `source.ts_ms`
    says it (both read the commit record's time)."""
    (at,) = conn.execute("SELECT pg_xact_commit_timestamp(%s::xid)", (xid,)).fetchone() or (None,)
    if not isinstance(at, datetime):
        raise Problem(f"PostgreSQL has no commit time for transaction {xid}")
    return at.astimezone(UTC).replace(microsecond=at.microsecond // 1000 * 1000)


def iso(at: datetime) -> str:
    """An instant as ISO 8601 UTC with milliseconds: 2026-03-02T10:00:00.123Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def change_price(shop: Shop, rng: random.Random) -> Change | None:
    """One product's price by -20%..+20%, never below cost; no change when it stays the same."""
    product_id = rng.choice(shop.product_ids)
    factor = Decimal(rng.randint(80, 120)) / 100
    row = shop.conn.execute(
        "UPDATE products SET price = GREATEST(cost, round(price * %s, 2)) "
        "WHERE product_id = %s AND price <> GREATEST(cost, round(price * %s, 2)) "
        "RETURNING updated_at",
        (factor, product_id, factor),
    ).fetchone()
    return _change("products", product_id, row)


def deactivate(shop: Shop, rng: random.Random) -> Change | None:
    """One active user deactivated (an inactive one stays as it is: no change to publish)."""
    user_id = rng.choice(shop.user_ids)
    row = shop.conn.execute(
        "UPDATE users SET is_active = false WHERE user_id = %s AND is_active RETURNING updated_at",
        (user_id,),
    ).fetchone()
    return _change("users", user_id, row)


def add_user(shop: Shop, rng: random.Random) -> Change | None:
    """A new bronze customer whose id (and e-mail) no existing row has."""
    for _ in range(NEW_USER_ATTEMPTS):
        user_id = new_user_id(rng, shop.taken)
        shop.taken.add(user_id)
        # another writer may have taken the id (or e-mail) since churn read the users: draw again
        row = shop.conn.execute(
            "INSERT INTO users (user_id, email, first_name, last_name, registration_date,"
            " country, city, tier) VALUES (%s, %s, 'New', 'Customer', current_date, 'US',"
            " 'Chicago', 'bronze') ON CONFLICT DO NOTHING RETURNING updated_at",
            (user_id, f"new.{user_id}@example.com"),
        ).fetchone()
        if row is not None:
            shop.user_ids.append(user_id)
            return _change("users", user_id, row)
    raise Problem(
        f"churn could not add a new user in {NEW_USER_ATTEMPTS} attempts: every id drawn exists",
        hint="is another writer inserting the same ids? another `--seed` draws other ones",
    )


def new_user_id(rng: random.Random, taken: set[str]) -> str:
    """A random version-4 UUID that is not in `taken`."""
    while True:
        user_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if user_id not in taken:
            return user_id


def _change(table: str, key: str, row: tuple[object, ...] | None) -> Change | None:
    """(table, key, updated_at) of a committed change, or None when nothing changed."""
    if row is None:
        return None
    updated_at = row[0]
    if not isinstance(updated_at, datetime):
        raise Problem(f"{table}.updated_at of {key} is not a timestamp: {updated_at!r}")
    return (table, key, updated_at.isoformat())


CHANGES: dict[str, Callable[[Shop, random.Random], Change | None]] = {
    "tier": move_tier,
    "price": change_price,
    "deactivate": deactivate,
    "new_user": add_user,
}
