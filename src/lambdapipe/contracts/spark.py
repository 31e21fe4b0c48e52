"""Spark artifacts derived from the schemas: the wire `StructType`s and validation Columns.

The validation Columns compute the same `reason` (and `detail`) as the Python validator, from
the raw Kafka value, in the same order of checks (see `reasons`), from the same compiled rules.
They use Spark 4's VARIANT functions so that JSON types stay visible (a quoted "2" is not 2).

Known differences from the Python validator, both on input no producer of ours writes:
duplicate object keys (Spark: not_json; orjson keeps the last) and numbers beyond a double such
as 1e400 (orjson: not_json; Spark: an infinite double, so a field error).

Money stays `StringType` in the wire schema: the JSON carries it as a string so that no float
ever touches it; jobs cast validated values with `money_column` to `DecimalType(10,2)`.
Timestamps stay `StringType` too and are parsed by the job (`timestamp_column`).
"""

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Final

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from lambdapipe.contracts import business
from lambdapipe.contracts.reasons import Reason
from lambdapipe.contracts.registry import EVENT_TYPES, default_registry
from lambdapipe.contracts.rules import (
    FieldRule,
    RecordRules,
    compile_entity,
    compile_events,
    entity_records,
    merged_fields,
)
from lambdapipe.contracts.validate import DEFAULT_LIMITS, EVENT_TIME_FIELD, Limits

TIMESTAMP_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
MONEY_TYPE: Final = DecimalType(10, 2)
_INT_VARIANT_TYPES: Final = ("TINYINT", "SMALLINT", "INT", "BIGINT")
_INT32_MAX: Final = 2**31 - 1


def _spark_type(rule: FieldRule) -> DataType:
    if rule.json_type == "boolean":
        return BooleanType()
    if rule.json_type == "integer":
        bounded = rule.minimum is not None and rule.maximum is not None
        if bounded and -_INT32_MAX - 1 <= rule.minimum <= rule.maximum <= _INT32_MAX:  # type: ignore[operator]
            return IntegerType()
        return LongType()
    return StringType()


def spark_schema(entity: str = "user_event") -> StructType:
    """The wire schema of `user_event` (all event types in one struct) or of an entity.

    Fields that some event types lack, or that allow null, are nullable.
    """
    records = entity_records(default_registry(), entity)
    return StructType(
        [
            StructField(rule.name, _spark_type(rule), nullable=optional)
            for rule, optional in merged_fields(records)
        ]
    )


def money_column(col: Column) -> Column:
    """Cast a validated money string to `DecimalType(10,2)`."""
    return col.cast(MONEY_TYPE)


def timestamp_column(col: Column) -> Column:
    """Parse a validated event-time string into a `TimestampType` instant."""
    return F.to_timestamp(col, TIMESTAMP_FORMAT)


Check = tuple[Column, Column, Column]
"""A condition meaning "violated", and the reason and detail it yields."""


class _Record:
    """Column accessors into one parsed VARIANT record."""

    def __init__(self, variant: Column) -> None:
        self.variant = variant

    def raw(self, name: str) -> Column:
        return F.try_variant_get(self.variant, f"$.{name}", "variant")

    def type_of(self, name: str) -> Column:
        return F.schema_of_variant(self.raw(name))

    def string(self, name: str) -> Column:
        return F.try_variant_get(self.variant, f"$.{name}", "string")

    def integer(self, name: str) -> Column:
        return F.try_variant_get(self.variant, f"$.{name}", "bigint")


def _lit(value: str) -> Column:
    return F.lit(str(value))


def _field_violation(record: _Record, rule: FieldRule) -> Column:
    """True when the present field breaks its rule (null counts as a type error unless nullable)."""
    is_null = F.is_variant_null(record.raw(rule.name))
    type_name = record.type_of(rule.name)
    bad: Column
    if rule.json_type == "string":
        value = record.string(rule.name)
        bad = type_name != "STRING"
        if rule.enum is not None:
            bad = bad | ~value.isin(list(rule.enum))
        if rule.min_length is not None:
            bad = bad | (F.char_length(value) < rule.min_length)
        if rule.max_length is not None:
            bad = bad | (F.char_length(value) > rule.max_length)
        if (pattern := rule.java_pattern) is not None:
            bad = bad | ~value.rlike(pattern)
        if rule.format in ("date", "date-time"):
            day = F.try_to_timestamp(F.substring(value, 1, 10), F.lit("yyyy-MM-dd"))
            bad = bad | day.isNull()
    elif rule.json_type == "integer":
        number = record.integer(rule.name)
        bad = ~type_name.isin(*_INT_VARIANT_TYPES)
        if rule.minimum is not None:
            bad = bad | (number < rule.minimum)
        if rule.maximum is not None:
            bad = bad | (number > rule.maximum)
    else:
        bad = type_name != "BOOLEAN"
    if rule.nullable:
        return ~is_null & bad
    return is_null | bad


def _decimal(record: _Record, rules: RecordRules, expr: business.Expr) -> Column:
    if isinstance(expr, business.Const):
        return F.lit(expr.value).cast(MONEY_TYPE)
    if isinstance(expr, business.Field):
        if rules.field(expr.name).json_type == "integer":
            return record.integer(expr.name).cast(DecimalType(20, 0))
        return record.string(expr.name).try_cast(MONEY_TYPE)
    left, right = _decimal(record, rules, expr.left), _decimal(record, rules, expr.right)
    operations: dict[str, Callable[[Column, Column], Column]] = {
        "+": Column.__add__,
        "-": Column.__sub__,
        "*": Column.__mul__,
    }
    return operations[expr.op](left, right)


def _rule_broken(record: _Record, rules: RecordRules, rule: business.Rule) -> Column:
    left, right = _decimal(record, rules, rule.left), _decimal(record, rules, rule.right)
    if rule.cmp == ">":
        return ~(left > right)
    if rule.cmp == ">=":
        return ~(left >= right)
    return left != right


def _record_checks(
    record: _Record, text: Column, rules: RecordRules, future_limit: Column
) -> list[Check]:
    """Every check of one record kind, in the documented order."""
    checks: list[Check] = []
    for name in rules.required:
        checks.append((record.raw(name).isNull(), _lit(Reason.MISSING_FIELD), _lit(f"$.{name}")))
    for rule in rules.fields:
        present = record.raw(rule.name).isNotNull()
        checks.append(
            (present & _field_violation(record, rule), _lit(rule.reason), _lit(f"$.{rule.name}"))
        )
    if rules.closed:
        allowed = F.array(*[F.lit(n) for n in sorted(rules.field_names)])
        extras = F.filter(F.json_object_keys(text), lambda key: ~F.array_contains(allowed, key))
        checks.append(
            (F.size(extras) > 0, _lit(Reason.SCHEMA_VIOLATION), F.concat(F.lit("$."), extras[0]))
        )
    if EVENT_TIME_FIELD in rules.field_names:
        event_time = F.try_to_timestamp(record.string(EVENT_TIME_FIELD), F.lit(TIMESTAMP_FORMAT))
        checks.append(
            (
                event_time > future_limit,
                _lit(Reason.FUTURE_TIMESTAMP),
                _lit(f"$.{EVENT_TIME_FIELD}"),
            )
        )
    for business_rule in business.rules_for(rules.name):
        checks.append(
            (
                _rule_broken(record, rules, business_rule),
                _lit(Reason.BUSINESS_RULE),
                _lit(business_rule.name),
            )
        )
    return checks


def _envelope_checks(value: Column, text: Column, variant: Column, limits: Limits) -> list[Check]:
    size = F.octet_length(value)
    return [
        (
            size > limits.max_bytes,
            _lit(Reason.TOO_LARGE),
            F.concat(size.cast("string"), F.lit(f" > {limits.max_bytes}")),
        ),
        (~F.is_valid_utf8(text) | variant.isNull(), _lit(Reason.NOT_JSON), _lit("$")),
        (~F.schema_of_variant(variant).startswith("OBJECT"), _lit(Reason.NOT_OBJECT), _lit("$")),
    ]


def _verdict(checks: list[Check]) -> Column:
    """A struct (reason, detail) of the first violated check, or null."""
    verdict = F.when(
        checks[0][0], F.struct(checks[0][1].alias("reason"), checks[0][2].alias("detail"))
    )
    for condition, reason, detail in checks[1:]:
        verdict = verdict.when(condition, F.struct(reason.alias("reason"), detail.alias("detail")))
    return verdict


def _future_limit(now: datetime | None, limits: Limits) -> Column:
    base = F.current_timestamp() if now is None else F.lit(now)
    seconds = limits.max_future_skew.total_seconds()
    return base + F.expr(f"make_dt_interval(0, 0, 0, {Decimal(seconds)})")


def event_validation(
    value: Column, *, now: datetime | None = None, limits: Limits = DEFAULT_LIMITS
) -> Column:
    """A struct column (reason, detail) for a raw `events` value; null when valid.

    `value` is the Kafka value, binary or string; `now` defaults to the query's current time.
    """
    text = value.cast("string")
    variant = F.try_parse_json(text)
    record = _Record(variant)
    event_type = record.string("event_type")
    future_limit = _future_limit(now, limits)
    checks = _envelope_checks(value, text, variant, limits)
    checks.append(
        (record.raw("event_type").isNull(), _lit(Reason.MISSING_FIELD), _lit("$.event_type"))
    )
    checks.append(
        (
            (record.type_of("event_type") != "STRING") | ~event_type.isin(*EVENT_TYPES),
            _lit(Reason.UNKNOWN_EVENT_TYPE),
            _lit("$.event_type"),
        )
    )
    for kind, rules in _EVENT_RULES.items():
        for condition, reason, detail in _record_checks(record, text, rules, future_limit):
            checks.append(((event_type == kind) & condition, reason, detail))
    return _verdict(checks)


def transaction_validation(
    value: Column, *, now: datetime | None = None, limits: Limits = DEFAULT_LIMITS
) -> Column:
    """A struct column (reason, detail) for a raw `transactions` value; null if valid."""
    text = value.cast("string")
    variant = F.try_parse_json(text)
    checks = _envelope_checks(value, text, variant, limits)
    checks += _record_checks(_Record(variant), text, _TRANSACTION_RULES, _future_limit(now, limits))
    return _verdict(checks)


_EVENT_RULES: Final = compile_events(default_registry())
_TRANSACTION_RULES: Final = compile_entity(default_registry(), "transaction")
