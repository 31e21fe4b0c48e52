"""The native "is this raw record valid?" check, configured from the compiled schemas.

`lambdapipe_native` (Rust, built from `native/` by `uv sync`) parses the raw bytes and checks
every rule the Python validator applies — types, enums, lengths, ranges, patterns (Rust
`regex`), calendar days, the event time against a limit and the business rules in exact decimal
arithmetic — in one call. It knows no field, pattern, enum or limit of its own: this module
serializes the `RecordRules` and business rules to JSON and hands them to its constructor.

It only answers yes or no. Its yes is exact: a record it accepts is one the ordered Python
rules accept. Its no is final on every input our producers write; on constructs our schemas
never produce it can be conservative (values Python `Decimal` would round, a calendar field
whose pattern does not fix the digit layout, JSON nested deeper than orjson allows), and the
Python rules, which run for every record it refuses, then decide. Schema patterns are written
in the syntax Python's `re` and Rust's `regex` share; there `$` is the end of the text in
Rust, as `\\Z` is in Python.

Measured (bench/bench_validator.py, 1M events, one core): see docs/data-model.md, "How the
Python validator is fast". What was tried before, in pure Python around pydantic-core, and
stayed at 3.76x `orjson.loads` or worse: pydantic-core `SchemaValidator`s per record shape
(3.76x); msgspec Structs, whose patterns run Python's `re` (3.6-6.3x); msgspec with patterns
left to pydantic-core, where converting the Struct back to a dict cost more than it saved
(3.9x); joined regexes over several fields (no better).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from lambdapipe_native import Validator

from lambdapipe.contracts import business
from lambdapipe.contracts.rules import FieldRule, RecordRules

CALENDAR_FORMATS = ("date", "date-time")


@dataclass(frozen=True, slots=True)
class NativeKind:
    """What one topic carries: the record kinds, told apart by `discriminator` if several."""

    records: Sequence[RecordRules]
    discriminator: str | None = None


def _field(rule: FieldRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "type": rule.json_type,
        "nullable": rule.nullable,
        "pattern": rule.pattern,
        "enum": None if rule.enum is None else list(rule.enum),
        "minimum": rule.minimum,
        "maximum": rule.maximum,
        "min_length": rule.min_length,
        "max_length": rule.max_length,
        "calendar": rule.format in CALENDAR_FORMATS,
    }


def _expr(expr: business.Expr) -> dict[str, Any]:
    if isinstance(expr, business.Field):
        return {"field": expr.name}
    if isinstance(expr, business.Const):
        return {"const": str(expr.value)}
    return {"op": expr.op, "left": _expr(expr.left), "right": _expr(expr.right)}


def _record(rules: RecordRules, event_time_field: str) -> dict[str, Any]:
    return {
        "name": rules.name,
        "closed": rules.closed,
        "required": list(rules.required),
        "event_time": event_time_field if event_time_field in rules.field_names else None,
        "fields": [_field(f) for f in rules.fields],
        "business": [
            {"cmp": r.cmp, "left": _expr(r.left), "right": _expr(r.right)}
            for r in business.rules_for(rules.name)
        ],
    }


def native_config(kinds: Mapping[str, NativeKind], event_time_field: str) -> str:
    """The JSON configuration of `lambdapipe_native.Validator` for `kinds`, in their order."""
    doc = {
        "kinds": [
            {
                "name": name,
                "discriminator": kind.discriminator,
                "records": [_record(r, event_time_field) for r in kind.records],
            }
            for name, kind in kinds.items()
        ]
    }
    return orjson.dumps(doc).decode()


def native_validator(kinds: Mapping[str, NativeKind], event_time_field: str) -> Validator:
    """A native validator for `kinds`; `check(i, ...)` takes the i-th kind of `kinds`."""
    return Validator(native_config(kinds, event_time_field))
