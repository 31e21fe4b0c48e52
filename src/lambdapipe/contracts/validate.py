"""The fast Python validator for events and transactions.

Each record kind gets a checker compiled from its schema at import time. Its fast path (native
pydantic-core, see `fastpath`) only answers "valid?"; for the rare rejected record the slow path
walks the rules in the documented order (see `reasons`) to name the first violation. The slow
path is the definition; tests check that both paths agree.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from lambdapipe.contracts import business
from lambdapipe.contracts.fastpath import compile_fast_check, compile_fast_union_check
from lambdapipe.contracts.reasons import Reason
from lambdapipe.contracts.registry import default_registry
from lambdapipe.contracts.rules import FieldRule, RecordRules, compile_entity, compile_events

EVENT_TIME_FIELD: Final = "timestamp"
CALENDAR_FORMATS: Final = ("date", "date-time")


@dataclass(frozen=True, slots=True)
class Limits:
    """Tunable limits of the validator."""

    max_bytes: int = 64 * 1024
    max_future_skew: timedelta = timedelta(minutes=5)


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The verdict on one raw record: the parsed record when ok, else a reason and where."""

    ok: bool
    reason: Reason | None = None
    detail: str | None = None
    event: dict[str, Any] | None = None


ValueCheck = Callable[[Any], bool]


def calendar_ok(value: str) -> bool:
    """Whether a pattern-valid date or timestamp names a real day.

    The schema pattern already bounds every component, so only day-of-month overflow
    (2026-02-30, 2026-04-31) remains.
    """
    if value[8:10] <= "28":
        return True
    try:
        datetime(int(value[:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def value_check(rule: FieldRule) -> ValueCheck:
    """Compile one field rule into a Python predicate on a present value (the slow path)."""
    if rule.json_type == "string":
        check = _string_check(rule)
    elif rule.json_type == "integer":
        lo = rule.minimum if rule.minimum is not None else float("-inf")
        hi = rule.maximum if rule.maximum is not None else float("inf")

        def check(v: Any) -> bool:
            return type(v) is int and lo <= v <= hi

    else:

        def check(v: Any) -> bool:
            return type(v) is bool

    if not rule.nullable:
        return check
    return lambda v: v is None or check(v)


def _string_check(rule: FieldRule) -> ValueCheck:
    allowed = None if rule.enum is None else frozenset(rule.enum)
    lo = rule.min_length or 0
    hi = rule.max_length if rule.max_length is not None else float("inf")
    pattern = rule.python_pattern
    calendar = rule.format in CALENDAR_FORMATS

    def check(v: Any) -> bool:
        return (
            type(v) is str
            and (allowed is None or v in allowed)
            and lo <= len(v) <= hi
            and (pattern is None or pattern.search(v) is not None)
            and (not calendar or calendar_ok(v))
        )

    return check


class RecordChecker:
    """Validates parsed records of one kind against its compiled rules."""

    def __init__(self, rules: RecordRules) -> None:
        self.rules = rules
        self.fast_check = compile_fast_check(rules)
        self._allowed = rules.field_names
        self._ordered = tuple((f.name, value_check(f), f.reason) for f in rules.fields)
        self._calendar = tuple(
            (f.name, f.reason) for f in rules.fields if f.format in CALENDAR_FORMATS
        )
        self._broken_rule = business.first_broken(business.rules_for(rules.name))
        self._has_event_time = EVENT_TIME_FIELD in self._allowed

    def check(
        self, record: dict[str, Any], now: datetime | None, skew: timedelta
    ) -> tuple[Reason, str] | None:
        """Return the first violation as (reason, detail), or None when `record` is valid.

        The event time may be at most `skew` after `now` (default: the wall clock).
        """
        if not self.fast_check(record):
            return self.schema_violation(record)
        for name, reason in self._calendar:
            value = record.get(name)
            if value is not None and not calendar_ok(value):
                return self.schema_violation(record) or (reason, f"$.{name}")
        if self._has_event_time and _is_future(record[EVENT_TIME_FIELD], now, skew):
            return Reason.FUTURE_TIMESTAMP, f"$.{EVENT_TIME_FIELD}"
        broken = self._broken_rule(record)
        return None if broken is None else (Reason.BUSINESS_RULE, broken)

    def schema_violation(self, record: dict[str, Any]) -> tuple[Reason, str] | None:
        """The slow path: the first schema violation in the documented order, if any."""
        for name in self.rules.required:
            if name not in record:
                return Reason.MISSING_FIELD, f"$.{name}"
        for name, ok, reason in self._ordered:
            if name in record and not ok(record[name]):
                return reason, f"$.{name}"
        if self.rules.closed:
            for key in record:
                if key not in self._allowed:
                    return Reason.SCHEMA_VIOLATION, f"$.{key}"
        return None


_REGISTRY = default_registry()
_EVENT_RULES: Final = compile_events(_REGISTRY)
EVENT_CHECKERS: Final = {et: RecordChecker(r) for et, r in _EVENT_RULES.items()}
TRANSACTION_CHECKER: Final = RecordChecker(compile_entity(_REGISTRY, "transaction"))
events_fast_check: Final = compile_fast_union_check(_EVENT_RULES, "event_type")
_EVENT_BROKEN_RULE: Final = {
    et: business.first_broken(rules) for et in _EVENT_RULES if (rules := business.rules_for(et))
}


class _WallClockLimit:
    """The last computed wall-clock limit, per skew."""

    skew = timedelta()
    value = ""


def future_limit(now: datetime | None, skew: timedelta) -> str:
    """`now + skew` formatted like an event timestamp (`now` defaults to the wall clock).

    The fixed timestamp format makes string order equal time order, so comparing strings
    spares parsing every event time.
    """
    if now is None:
        now = datetime.now(UTC)
    return _format_timestamp(now + skew)


def _is_future(timestamp: str, now: datetime | None, skew: timedelta) -> bool:
    """Whether `timestamp` is later than `now + skew`.

    Against the wall clock the last limit is reused while events stay below it: the limit only
    grows, so an event below an older limit is below the current one too, and the clock is
    read only for events near or beyond it. (Should the wall clock step back, the older limit
    holds until an event passes it.)
    """
    if now is not None:
        return timestamp > _given_limit(now, skew)
    cache = _WallClockLimit
    if timestamp <= cache.value and skew is cache.skew:
        return False
    cache.skew, cache.value = skew, future_limit(None, skew)
    return timestamp > cache.value


@functools.lru_cache(maxsize=16)
def _given_limit(now: datetime, skew: timedelta) -> str:
    """`future_limit` for a given `now`: callers such as a micro-batch pass the same one often."""
    return future_limit(now, skew)


def _format_timestamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _UnfrozenResult:
    """The slots of `ValidationResult` without the frozen `__setattr__`."""

    __slots__ = ("detail", "event", "ok", "reason")


def _accepted(event: dict[str, Any]) -> ValidationResult:
    """`ValidationResult(True, None, None, event)` at a third of the cost of the frozen `__init__`.

    The instance is filled through the unfrozen twin, then relabelled: the two classes have the
    same slots, so Python allows assigning `__class__`.
    """
    result: Any = _UnfrozenResult()
    result.ok, result.reason, result.detail, result.event = True, None, None, event
    result.__class__ = ValidationResult
    accepted: ValidationResult = result
    return accepted


def _parse(raw: Any, limits: Limits) -> dict[str, Any] | ValidationResult:
    try:
        if len(raw) > limits.max_bytes:
            return ValidationResult(False, Reason.TOO_LARGE, f"{len(raw)} > {limits.max_bytes}")
        parsed = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return ValidationResult(False, Reason.NOT_JSON, "$")
    if type(parsed) is not dict:
        return ValidationResult(False, Reason.NOT_OBJECT, "$")
    return parsed


def _rejected(violation: tuple[Reason, str]) -> ValidationResult:
    return ValidationResult(False, violation[0], violation[1])


def validate_event(
    raw: bytes, now: datetime | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> ValidationResult:
    """Validate one raw record of the `events` topic against its event type's schema.

    `now` (timezone-aware; default: the wall clock) bounds the event time. Never raises, on any
    input.
    """
    try:
        if len(raw) > limits.max_bytes:
            return ValidationResult(False, Reason.TOO_LARGE, f"{len(raw)} > {limits.max_bytes}")
        parsed = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return ValidationResult(False, Reason.NOT_JSON, "$")
    if type(parsed) is not dict:
        return ValidationResult(False, Reason.NOT_OBJECT, "$")
    # Hot path (parsing is inlined above for the same reason): native checks of every schema
    # rule of the right event type, then the few checks no schema keyword expresses.
    if events_fast_check(parsed):
        timestamp = parsed[EVENT_TIME_FIELD]
        if timestamp[8:10] > "28" and not calendar_ok(timestamp):
            return ValidationResult(False, Reason.BAD_TIMESTAMP, f"$.{EVENT_TIME_FIELD}")
        skew = limits.max_future_skew
        cache = _WallClockLimit
        if (now is not None or timestamp > cache.value or skew is not cache.skew) and _is_future(
            timestamp, now, skew
        ):
            return ValidationResult(False, Reason.FUTURE_TIMESTAMP, f"$.{EVENT_TIME_FIELD}")
        broken_rule = _EVENT_BROKEN_RULE.get(parsed["event_type"])
        if broken_rule is not None and (broken := broken_rule(parsed)) is not None:
            return ValidationResult(False, Reason.BUSINESS_RULE, broken)
        return _accepted(parsed)
    event_type = parsed.get("event_type")
    if event_type is None and "event_type" not in parsed:
        return ValidationResult(False, Reason.MISSING_FIELD, "$.event_type")
    checker = EVENT_CHECKERS.get(event_type) if type(event_type) is str else None
    if checker is None:
        return ValidationResult(False, Reason.UNKNOWN_EVENT_TYPE, "$.event_type")
    violation = checker.check(parsed, now, limits.max_future_skew)
    # The fast path rejected the record, so the ordered rules name a violation.
    return _rejected(violation or (Reason.SCHEMA_VIOLATION, "$"))


def validate_transaction(
    raw: bytes, now: datetime | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> ValidationResult:
    """Validate one raw record of the `transactions` topic. Never raises on any input."""
    parsed = _parse(raw, limits)
    if isinstance(parsed, ValidationResult):
        return parsed
    violation = TRANSACTION_CHECKER.check(parsed, now, limits.max_future_skew)
    if violation is None:
        return _accepted(parsed)
    return _rejected(violation)
