"""Fault injection: the `--faults` spec and the faulty records that the validator must reject.

Faulty records (malformed JSON and schema violations) are extra records beside the valid events,
each with a fresh event_id and the reason the contracts validator gives it. Duplicates re-send an
event's exact bytes; late and out-of-order events are valid events delivered later than their
place in the stream. Unknown users are whole sessions from users missing from the dimensions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Final

import orjson

from lambdapipe.contracts import Reason
from lambdapipe.generator.clock import parse_duration

KINDS: Final = ("duplicate", "late", "out_of_order", "malformed", "schema", "unknown_user")
MALFORMED_REASONS: Final = (Reason.NOT_JSON, Reason.NOT_OBJECT, Reason.TOO_LARGE)
SCHEMA_REASONS: Final = (
    Reason.UNKNOWN_EVENT_TYPE,
    Reason.MISSING_FIELD,
    Reason.SCHEMA_VIOLATION,
    Reason.BAD_UUID,
    Reason.BAD_IP,
    Reason.BAD_TIMESTAMP,
    Reason.FUTURE_TIMESTAMP,
    Reason.BAD_MONEY,
    Reason.BUSINESS_RULE,
)
_BASE_FIELDS: Final = (
    "event_id",
    "user_id",
    "session_id",
    "timestamp",
    "device_type",
    "browser",
    "ip_address",
)
DEFAULT_LATE_DELAY_US: Final = 3_600_000_000


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Per-event probabilities of each fault kind, the delay of late events and, when given,
    of duplicates (none: a duplicate follows its original within 1-50 records)."""

    duplicate: float = 0.0
    duplicate_delay_us: int | None = None
    late: float = 0.0
    late_delay_us: int = DEFAULT_LATE_DELAY_US
    out_of_order: float = 0.0
    malformed: float = 0.0
    schema: float = 0.0
    unknown_user: float = 0.0

    @property
    def per_event(self) -> float:
        """Probability that some per-event fault fires (unknown users are drawn per session)."""
        return self.duplicate + self.late + self.out_of_order + self.malformed + self.schema

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        """Parse `kind=rate[,kind=rate...]`; late and duplicate take `kind=rate:delay` (e.g.
        late=0.005:2h; duplicate=0.01:5m re-sends each copy 5 min of event time later)."""
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, sep, value = part.partition("=")
            kind = kind.strip()
            if not sep or kind not in KINDS:
                raise ValueError(f"bad fault {part!r}: expected one of {', '.join(KINDS)}=RATE")
            if kind in ("late", "duplicate") and ":" in value:
                value, delay = value.split(":", 1)
                values[f"{kind}_delay_us"] = parse_duration(delay)
            elif ":" in value:
                raise ValueError(f"bad fault {part!r}: only late and duplicate take a :DELAY")
            rate = float(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate out of [0, 1]: {part!r}")
            values[kind] = rate
        faults = cls(**values)
        if faults.per_event > 0.5:
            raise ValueError("per-event fault rates add up to more than 0.5")
        return faults


def faulty_record(event: dict[str, Any], reason: Reason, rng: random.Random) -> bytes:
    """A record shaped like `event` that the contracts validator rejects with `reason`."""
    if reason is Reason.NOT_JSON:
        line = orjson.dumps(event)
        return line[: rng.randint(1, len(line) - 1)]
    if reason is Reason.NOT_OBJECT:
        return orjson.dumps([event])
    record = {name: event[name] for name in _BASE_FIELDS}
    record["event_id"] = f"{rng.getrandbits(32):08x}-dead-4bad-8bad-{rng.getrandbits(48):012x}"
    record["event_type"] = "page_view"
    record["page_url"] = "https://shop.example.com/"
    if reason is Reason.TOO_LARGE:
        record["page_url"] += "x" * 70_000
    elif reason is Reason.UNKNOWN_EVENT_TYPE:
        record["event_type"] = "wishlist_add"
    elif reason is Reason.MISSING_FIELD:
        del record["session_id"]
    elif reason is Reason.SCHEMA_VIOLATION:
        record["coupon_code"] = "SAVE10"
    elif reason is Reason.BAD_UUID:
        record["user_id"] = record["user_id"][:-1] + "g"
    elif reason is Reason.BAD_IP:
        record["ip_address"] = "256." + record["ip_address"].split(".", 1)[1]
    elif reason is Reason.BAD_TIMESTAMP:
        record["timestamp"] = record["timestamp"].replace("T", " ")
    elif reason is Reason.FUTURE_TIMESTAMP:
        record["timestamp"] = "2999-01-01" + record["timestamp"][10:]
    else:
        del record["page_url"]
        record["event_type"] = "checkout_start"
        record["item_count"] = 1
        record["cart_value"] = "12.5" if reason is Reason.BAD_MONEY else "0.00"
    return orjson.dumps(record)
