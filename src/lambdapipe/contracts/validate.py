"""The validator for events and transactions.

Each record kind gets a checker compiled from its schema at import time. The fast path is one
native call on the raw bytes (`lambdapipe_native`, configured from the same rules, see
`native`) that returns a valid record's dict, as orjson would parse it. For the rare record it
refuses, the slow path walks the rules in the documented order (see `reasons`) to name the first
violation. The slow path is the definition; tests check that both paths agree.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from lambdapipe.contracts import business
from lambdapipe.contracts.native import CALENDAR_FORMATS, NativeKind, native_validator
from lambdapipe.contracts.reasons import Reason
from lambdapipe.contracts.registry import default_registry
from lambdapipe.contracts.rules import FieldRule, RecordRules, compile_entity, compile_events

EVENT_TIME_FIELD: Final = "timestamp"
EVENT_DISCRIMINATOR: Final = "event_type"


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
        self._allowed = rules.field_names
        self._ordered = tuple((f.name, value_check(f), f.reason) for f in rules.fields)
        self._broken_rule = business.first_broken(business.rules_for(rules.name))
        self._has_event_time = EVENT_TIME_FIELD in self._allowed

    def check(
        self, record: dict[str, Any], now: datetime | None, skew: timedelta
    ) -> tuple[Reason, str] | None:
        """Return the first violation as (reason, detail), or None when `record` is valid.

        The event time may be at most `skew` after `now` (default: the wall clock).
        """
        violation = self.schema_violation(record)
        if violation is not None:
            return violation
        if self._has_event_time and _is_future(record[EVENT_TIME_FIELD], now, skew):
            return Reason.FUTURE_TIMESTAMP, f"$.{EVENT_TIME_FIELD}"
        broken = self._broken_rule(record)
        return None if broken is None else (Reason.BUSINESS_RULE, broken)

    def schema_violation(self, record: dict[str, Any]) -> tuple[Reason, str] | None:
        """The first schema violation in the documented order, if any."""
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
NATIVE: Final = native_validator(
    {
        "event": NativeKind(tuple(_EVENT_RULES.values()), EVENT_DISCRIMINATOR),
        "transaction": NativeKind((TRANSACTION_CHECKER.rules,)),
    },
    EVENT_TIME_FIELD,
)
EVENT_KIND: Final = 0
TRANSACTION_KIND: Final = 1
_native_parse = NATIVE.parse


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


def native_limit(now: datetime | None, skew: timedelta) -> str:
    """The event-time limit for the native check: `future_limit`, or against the wall clock
    the last computed one ("" before the first), which the Python path renews when passed.
    """
    if now is not None:
        return _given_limit(now, skew)
    cache = _WallClockLimit
    return cache.value if skew is cache.skew else ""


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
        # Hot path: one native call checks every rule on the raw bytes and builds the dict.
        # `native_limit` and `_accepted` are inlined: each call would cost 2% here.
        skew = limits.max_future_skew
        if now is not None:
            limit = _given_limit(now, skew)
        else:
            limit = _WallClockLimit.value if skew is _WallClockLimit.skew else ""
        event = _native_parse(EVENT_KIND, raw, limit)
        if event is not None:
            result: Any = _UnfrozenResult()
            result.ok, result.reason, result.detail, result.event = True, None, None, event
            result.__class__ = ValidationResult
            accepted: ValidationResult = result
            return accepted
        parsed = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return ValidationResult(False, Reason.NOT_JSON, "$")
    if type(parsed) is not dict:
        return ValidationResult(False, Reason.NOT_OBJECT, "$")
    event_type = parsed.get(EVENT_DISCRIMINATOR)
    if event_type is None and EVENT_DISCRIMINATOR not in parsed:
        return ValidationResult(False, Reason.MISSING_FIELD, f"$.{EVENT_DISCRIMINATOR}")
    checker = EVENT_CHECKERS.get(event_type) if type(event_type) is str else None
    if checker is None:
        return ValidationResult(False, Reason.UNKNOWN_EVENT_TYPE, f"$.{EVENT_DISCRIMINATOR}")
    violation = checker.check(parsed, now, limits.max_future_skew)
    return _accepted(parsed) if violation is None else _rejected(violation)


def validate_transaction(
    raw: bytes, now: datetime | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> ValidationResult:
    """Validate one raw record of the `transactions` topic. Never raises on any input."""
    try:
        if len(raw) <= limits.max_bytes:
            limit = native_limit(now, limits.max_future_skew)
            transaction = _native_parse(TRANSACTION_KIND, raw, limit)
            if transaction is not None:
                return _accepted(transaction)
    except TypeError:
        pass
    parsed = _parse(raw, limits)
    if isinstance(parsed, ValidationResult):
        return parsed
    violation = TRANSACTION_CHECKER.check(parsed, now, limits.max_future_skew)
    return _accepted(parsed) if violation is None else _rejected(violation)
