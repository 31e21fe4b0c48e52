"""Valid records made from the examples, and the two verdicts the contracts tests compare.

`python_ok` is the ordered Python rules alone (the definition); `native_ok` is the native check
that `validate_event` / `validate_transaction` ask first. Both judge against `NOW`.
"""

import random
import uuid
from typing import Any

import orjson

from lambdapipe.contracts import Limits
from lambdapipe.contracts.validate import (
    EVENT_CHECKERS,
    EVENT_KIND,
    NATIVE,
    TRANSACTION_CHECKER,
    TRANSACTION_KIND,
    native_limit,
)

from .corpus import EVENT_EXAMPLES, NOW, example

KINDS = {"event": EVENT_KIND, "transaction": TRANSACTION_KIND}


def native_ok(raw: bytes, kind: str, limits: Limits | None = None) -> bool:
    """The native verdict on `raw` as a record of `kind` ("event" or "transaction")."""
    skew = (limits or Limits()).max_future_skew
    return NATIVE.check(KINDS[kind], raw, native_limit(NOW, skew))


def python_ok(raw: bytes, kind: str, limits: Limits | None = None) -> bool:
    """The Python rules' verdict on `raw`, the size limit aside."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(record, dict):
        return False
    if kind == "transaction":
        checker = TRANSACTION_CHECKER
    else:
        event_type = record.get("event_type")
        checker = EVENT_CHECKERS.get(event_type) if isinstance(event_type, str) else None
    skew = (limits or Limits()).max_future_skew
    return checker is not None and checker.check(record, NOW, skew) is None


def shuffled(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    """The same record with its keys in random order."""
    keys = list(record)
    rng.shuffle(keys)
    return {key: record[key] for key in keys}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _money(rng: random.Random, cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def valid_events(rng: random.Random, per_type: int = 20) -> list[dict[str, Any]]:
    """Valid events of every type: optional fields dropped at random, null referrers, new ids,
    keys shuffled."""
    events: list[dict[str, Any]] = []
    for event_type, valid in EVENT_EXAMPLES.items():
        rules = EVENT_CHECKERS[event_type].rules
        optional = [f.name for f in rules.fields if f.name not in rules.required]
        for _ in range(per_type):
            event = dict(valid)
            for name in optional:
                if name in event and rng.random() < 0.5:
                    del event[name]
            if rng.random() < 0.3 and rules.field("referrer").nullable:
                event["referrer"] = None
            event["event_id"] = _uuid(rng)
            events.append(shuffled(rng, event))
    return events


def valid_transactions(rng: random.Random, count: int = 40) -> list[dict[str, Any]]:
    """Valid transactions with random prices whose total adds up, keys shuffled."""
    transactions = []
    for _ in range(count):
        record = example("transaction")
        unit, quantity = rng.randint(1, 99_999_99), rng.randint(1, 99)
        discount = rng.randint(0, unit * quantity)
        tax = rng.randint(0, 50_000)
        total = unit * quantity - discount + tax
        if total >= 10**10:
            continue
        record.update(
            transaction_id=_uuid(rng),
            quantity=quantity,
            unit_price=_money(rng, unit),
            discount_amount=_money(rng, discount),
            tax_amount=_money(rng, tax),
            total_amount=_money(rng, total),
        )
        transactions.append(shuffled(rng, record))
    return transactions
