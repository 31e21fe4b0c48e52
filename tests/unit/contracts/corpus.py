"""Invalid records, each with the reason every validator must give it.

Cases are built from the valid examples in `schemas/examples/` by one mutation each, so a reader
sees exactly what is wrong. `NOW` is the clock all validators are given.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from lambdapipe.contracts import Limits, Reason
from lambdapipe.contracts.registry import EVENT_TYPES, schemas_dir

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def example(name: str) -> dict[str, Any]:
    """A fresh copy of a valid example record."""
    parsed: dict[str, Any] = orjson.loads(
        (schemas_dir() / "examples" / f"{name}.json").read_bytes()
    )
    return parsed


EVENT_EXAMPLES = {et: example(et) for et in EVENT_TYPES}


@dataclass(frozen=True)
class Case:
    """One invalid record and its expected verdict."""

    name: str
    raw: bytes
    reason: Reason
    detail: str | None = None
    kind: str = "event"
    limits: Limits = field(default_factory=Limits)
    reference_differs: str | None = None
    """Why the generic jsonschema validator disagrees, when our validator is stricter."""


def with_(name: str, drop: tuple[str, ...] = (), **changes: Any) -> bytes:
    """The example `name` with fields changed or dropped, serialized."""
    record = example(name)
    for key in drop:
        del record[key]
    record.update(changes)
    return orjson.dumps(record)


def with_literal(name: str, key: str, literal: bytes) -> bytes:
    """The example `name` with `key` set to raw JSON text that Python cannot serialize."""
    return with_(name, **{key: "@@"}).replace(b'"@@"', literal)


PV = "page_view"
UPPER_UUID = "5B0C3A8E-8F1D-4C2A-9B7E-1D2F3A4B5C6D"

CASES: list[Case] = [
    # Before parsing.
    Case(
        "too large",
        b'{"event_type": "page_view", "pad": "' + b"x" * 70_000 + b'"}',
        Reason.TOO_LARGE,
    ),
    Case("too large by limit", with_(PV), Reason.TOO_LARGE, limits=Limits(max_bytes=100)),
    # Parsing.
    Case("empty bytes", b"", Reason.NOT_JSON, "$"),
    Case("truncated", with_(PV)[:-10], Reason.NOT_JSON, "$"),
    Case(
        "invalid utf-8", with_(PV).replace(b"shop.example", b"shop.\xc3\x28xample"), Reason.NOT_JSON
    ),
    Case("utf-16 bom", b"\xff\xfe" + with_(PV), Reason.NOT_JSON),
    Case("NaN literal", with_literal("search", "results_count", b"NaN"), Reason.NOT_JSON),
    Case("deep nesting", b"[" * 5_000 + b"]" * 5_000, Reason.NOT_JSON),
    Case("single quotes", b"{'event_type': 'login'}", Reason.NOT_JSON),
    Case(
        "number overflowing a double",
        with_literal("search", "results_count", b"1e400"),
        Reason.NOT_JSON,
    ),
    # Not an object.
    Case("array", b"[]", Reason.NOT_OBJECT, "$"),
    Case("string", b'"page_view"', Reason.NOT_OBJECT, "$"),
    Case("number", b"42", Reason.NOT_OBJECT, "$"),
    Case("null", b"null", Reason.NOT_OBJECT, "$"),
    # Event type.
    Case("empty object", b"{}", Reason.MISSING_FIELD, "$.event_type"),
    Case(
        "event_type missing", with_(PV, drop=("event_type",)), Reason.MISSING_FIELD, "$.event_type"
    ),
    Case(
        "unknown event type", with_(PV, event_type="checkout_complete"), Reason.UNKNOWN_EVENT_TYPE
    ),
    Case("event type in capitals", with_(PV, event_type="PAGE_VIEW"), Reason.UNKNOWN_EVENT_TYPE),
    Case("event type as number", with_(PV, event_type=3), Reason.UNKNOWN_EVENT_TYPE),
    Case("event type null", with_(PV, event_type=None), Reason.UNKNOWN_EVENT_TYPE),
    Case("event type as list", with_(PV, event_type=["page_view"]), Reason.UNKNOWN_EVENT_TYPE),
    # Missing fields.
    Case(
        "page_view without page_url",
        with_(PV, drop=("page_url",)),
        Reason.MISSING_FIELD,
        "$.page_url",
    ),
    Case(
        "purchase without amount",
        with_("purchase", drop=("amount",)),
        Reason.MISSING_FIELD,
        "$.amount",
    ),
    Case("no event_id", with_("login", drop=("event_id",)), Reason.MISSING_FIELD, "$.event_id"),
    Case(
        "missing wins over a bad value",
        with_(PV, drop=("page_url",), user_id=UPPER_UUID),
        Reason.MISSING_FIELD,
        "$.page_url",
    ),
    # UUIDs.
    Case("uuid upper case", with_(PV, user_id=UPPER_UUID), Reason.BAD_UUID, "$.user_id"),
    Case(
        "uuid without dashes",
        with_(PV, session_id="0f9e8d7c6b5a4c3d8e2f1a0b9c8d7e6f"),
        Reason.BAD_UUID,
        "$.session_id",
    ),
    Case(
        "uuid with braces",
        with_(PV, event_id="{00000000-1111-4222-8333-444455556666}"),
        Reason.BAD_UUID,
        "$.event_id",
    ),
    Case("uuid null", with_(PV, user_id=None), Reason.BAD_UUID, "$.user_id"),
    Case(
        "uuid as number", with_("product_view", product_id=12345), Reason.BAD_UUID, "$.product_id"
    ),
    Case(
        "uuid with trailing newline",
        with_(PV, user_id="5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d\n"),
        Reason.BAD_UUID,
        "$.user_id",
        reference_differs="jsonschema uses re.search, whose $ also matches before a final newline",
    ),
    # IP addresses.
    Case("ipv6", with_(PV, ip_address="2001:db8::1"), Reason.BAD_IP, "$.ip_address"),
    Case("octet above 255", with_(PV, ip_address="256.1.1.1"), Reason.BAD_IP, "$.ip_address"),
    Case("three octets", with_(PV, ip_address="10.1.1"), Reason.BAD_IP, "$.ip_address"),
    Case("leading zero", with_(PV, ip_address="010.1.1.1"), Reason.BAD_IP, "$.ip_address"),
    Case("ip as integer", with_(PV, ip_address=167837953), Reason.BAD_IP, "$.ip_address"),
    # Timestamps.
    Case(
        "no milliseconds",
        with_(PV, timestamp="2026-11-26T10:00:00Z"),
        Reason.BAD_TIMESTAMP,
        "$.timestamp",
    ),
    Case(
        "microseconds",
        with_(PV, timestamp="2026-11-26T10:00:00.123456Z"),
        Reason.BAD_TIMESTAMP,
        "$.timestamp",
    ),
    Case(
        "offset instead of Z",
        with_(PV, timestamp="2026-11-26T11:00:00.123+01:00"),
        Reason.BAD_TIMESTAMP,
        "$.timestamp",
    ),
    Case(
        "space separator",
        with_(PV, timestamp="2026-11-26 10:00:00.123Z"),
        Reason.BAD_TIMESTAMP,
        "$.timestamp",
    ),
    Case(
        "hour 24",
        with_(PV, timestamp="2026-11-26T24:00:00.000Z"),
        Reason.BAD_TIMESTAMP,
        "$.timestamp",
    ),
    Case(
        "February 30",
        with_(PV, timestamp="2026-02-30T10:00:00.000Z"),
        Reason.BAD_TIMESTAMP,
        "$.timestamp",
        reference_differs="calendar validity is beyond the schema pattern",
    ),
    Case("epoch millis", with_(PV, timestamp=1764151200123), Reason.BAD_TIMESTAMP, "$.timestamp"),
    Case(
        "future",
        with_(PV, timestamp="2026-11-26T12:10:00.000Z"),
        Reason.FUTURE_TIMESTAMP,
        "$.timestamp",
        reference_differs="semantic",
    ),
    Case(
        "just past the skew",
        with_(PV, timestamp="2026-11-26T12:05:00.001Z"),
        Reason.FUTURE_TIMESTAMP,
        "$.timestamp",
        reference_differs="semantic",
    ),
    # Money.
    Case("money as float", with_("purchase", amount=117.58), Reason.BAD_MONEY, "$.amount"),
    Case("money one decimal", with_("purchase", amount="117.5"), Reason.BAD_MONEY, "$.amount"),
    Case(
        "money thousands separator",
        with_("checkout_start", cart_value="1,119.98"),
        Reason.BAD_MONEY,
        "$.cart_value",
    ),
    Case(
        "money too big for decimal(10,2)",
        with_("purchase", amount="123456789.00"),
        Reason.BAD_MONEY,
        "$.amount",
    ),
    Case("money exponent", with_("purchase", amount="1e2"), Reason.BAD_MONEY, "$.amount"),
    # Other schema rules.
    Case("extra property", with_(PV, coupon="SAVE10"), Reason.SCHEMA_VIOLATION, "$.coupon"),
    Case(
        "field of another type",
        with_(PV, product_id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
        Reason.SCHEMA_VIOLATION,
        "$.product_id",
    ),
    Case(
        "number as string",
        with_("add_to_cart", quantity="2"),
        Reason.SCHEMA_VIOLATION,
        "$.quantity",
    ),
    Case(
        "boolean as number",
        with_("add_to_cart", quantity=True),
        Reason.SCHEMA_VIOLATION,
        "$.quantity",
    ),
    Case(
        "integral float",
        with_("add_to_cart", quantity=2.0),
        Reason.SCHEMA_VIOLATION,
        "$.quantity",
        reference_differs="JSON Schema counts 2.0 as an integer; we accept integer literals only",
    ),
    Case("quantity zero", with_("add_to_cart", quantity=0), Reason.SCHEMA_VIOLATION, "$.quantity"),
    Case(
        "quantity 100",
        with_("remove_from_cart", quantity=100),
        Reason.SCHEMA_VIOLATION,
        "$.quantity",
    ),
    Case(
        "huge integer",
        with_literal("search", "results_count", b"1" + b"0" * 30),
        Reason.SCHEMA_VIOLATION,
        "$.results_count",
    ),
    Case(
        "negative count",
        with_("search", results_count=-1),
        Reason.SCHEMA_VIOLATION,
        "$.results_count",
    ),
    Case(
        "empty search", with_("search", search_query=""), Reason.SCHEMA_VIOLATION, "$.search_query"
    ),
    Case(
        "search 201 chars",
        with_("search", search_query="q" * 201),
        Reason.SCHEMA_VIOLATION,
        "$.search_query",
    ),
    Case(
        "huge url",
        with_(PV, page_url="https://x.example/" + "a" * 3000),
        Reason.SCHEMA_VIOLATION,
        "$.page_url",
    ),
    Case(
        "nested garbage",
        with_(PV, page_url={"a": [[[{"b": None}]]]}),
        Reason.SCHEMA_VIOLATION,
        "$.page_url",
    ),
    Case(
        "enum wrong case",
        with_(PV, device_type="Desktop"),
        Reason.SCHEMA_VIOLATION,
        "$.device_type",
    ),
    Case("enum unknown", with_(PV, browser="opera"), Reason.SCHEMA_VIOLATION, "$.browser"),
    Case("enum null", with_(PV, device_type=None), Reason.SCHEMA_VIOLATION, "$.device_type"),
    Case("referrer as number", with_(PV, referrer=42), Reason.SCHEMA_VIOLATION, "$.referrer"),
    Case("page_url null", with_(PV, page_url=None), Reason.SCHEMA_VIOLATION, "$.page_url"),
    Case(
        "item count zero",
        with_("checkout_start", item_count=0),
        Reason.SCHEMA_VIOLATION,
        "$.item_count",
    ),
    # Business rules.
    Case(
        "purchase of zero",
        with_("purchase", amount="0.00"),
        Reason.BUSINESS_RULE,
        "purchase.amount_positive",
        reference_differs="semantic",
    ),
    Case(
        "negative purchase",
        with_("purchase", amount="-5.00"),
        Reason.BUSINESS_RULE,
        "purchase.amount_positive",
        reference_differs="semantic",
    ),
    Case(
        "empty cart value",
        with_("checkout_start", cart_value="0.00"),
        Reason.BUSINESS_RULE,
        "checkout_start.cart_value_positive",
        reference_differs="semantic",
    ),
    # Transactions.
    Case(
        "total does not add up",
        with_("transaction", total_amount="117.59"),
        Reason.BUSINESS_RULE,
        "transaction.total_amount",
        kind="transaction",
        reference_differs="semantic",
    ),
    Case(
        "negative discount",
        with_("transaction", discount_amount="-12.00", total_amount="141.58"),
        Reason.BUSINESS_RULE,
        "transaction.discount_not_negative",
        kind="transaction",
        reference_differs="semantic",
    ),
    Case(
        "currency EUR",
        with_("transaction", currency="EUR"),
        Reason.SCHEMA_VIOLATION,
        "$.currency",
        kind="transaction",
    ),
    Case(
        "unknown status",
        with_("transaction", status="shipped"),
        Reason.SCHEMA_VIOLATION,
        "$.status",
        kind="transaction",
    ),
    Case(
        "total as float",
        with_("transaction", total_amount=117.58),
        Reason.BAD_MONEY,
        "$.total_amount",
        kind="transaction",
    ),
    Case(
        "transaction missing payment",
        with_("transaction", drop=("payment_method",)),
        Reason.MISSING_FIELD,
        "$.payment_method",
        kind="transaction",
    ),
    Case(
        "transaction in the future",
        with_("transaction", timestamp="2027-01-01T00:00:00.000Z"),
        Reason.FUTURE_TIMESTAMP,
        "$.timestamp",
        kind="transaction",
        reference_differs="semantic",
    ),
    Case("transaction not json", b"\x00\x01", Reason.NOT_JSON, "$", kind="transaction"),
]
