"""Compiles field rules into pydantic-core validators: the fast "is it valid?" answer.

pydantic-core checks types, enums, lengths, ranges and patterns (Rust regex) in native code,
several times faster than the same checks as Python bytecode. A record whose key set was seen
before has its values validated as a tuple, which costs less than validating the dict. It only
says yes or no; which reason a rejected record gets is decided by the ordered Python rules.

Why not msgspec Structs: its `Meta(pattern=...)` runs Python's `re`, so a whole validator built
on it measured 6.3x `orjson.loads` (3.6x here); with patterns left to pydantic-core, converting
the Struct back to the result's dict cost more than it saved (3.9x).
"""

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

from pydantic_core import CoreSchema, SchemaValidator, core_schema

from lambdapipe.contracts.rules import FieldRule, RecordRules

FastCheck = Callable[[dict[str, Any]], bool]
_Shape = tuple[Callable[[dict[str, Any]], tuple[Any, ...]], Callable[[tuple[Any, ...]], bool]]

_MAX_SHAPES = 256


def _field_schema(rule: FieldRule) -> CoreSchema:
    schema: CoreSchema
    if rule.json_type == "string" and rule.enum is not None:
        schema = core_schema.literal_schema(list(rule.enum))
        if rule.pattern is not None or rule.min_length is not None or rule.max_length is not None:
            schema = core_schema.chain_schema([schema, _string_schema(rule)])
    elif rule.json_type == "string":
        schema = _string_schema(rule)
    elif rule.json_type == "integer":
        schema = core_schema.int_schema(ge=rule.minimum, le=rule.maximum, strict=True)
    else:
        schema = core_schema.bool_schema(strict=True)
    return core_schema.nullable_schema(schema, strict=True) if rule.nullable else schema


def _string_schema(rule: FieldRule) -> CoreSchema:
    return core_schema.str_schema(
        pattern=rule.pattern,
        min_length=rule.min_length,
        max_length=rule.max_length,
        strict=True,
    )


def _record_schema(rules: RecordRules) -> CoreSchema:
    fields = {
        rule.name: core_schema.typed_dict_field(
            _field_schema(rule), required=rule.name in rules.required
        )
        for rule in rules.fields
    }
    return core_schema.typed_dict_schema(
        fields, extra_behavior="forbid" if rules.closed else "ignore", strict=True
    )


def _shape(rules: RecordRules, names: tuple[str, ...]) -> _Shape:
    """Get the values of the fields `names` as a tuple, and validate that tuple."""
    by_name = {rule.name: rule for rule in rules.fields}
    items = [_field_schema(by_name[n]) if n in by_name else core_schema.any_schema() for n in names]
    values = itemgetter(*names) if len(names) > 1 else lambda record: (record[names[0]],)
    return values, SchemaValidator(core_schema.tuple_schema(items, strict=True)).isinstance_python


class _Shapes(dict[tuple[str, int], _Shape]):
    """Per record kind and number of keys, the first valid key set seen, as a `_shape`.

    Getting the values by name succeeds only if a record with that many keys has exactly those,
    so validating the tuple then answers for the whole record, in any key order, faster than
    the dict validator. That one answers for the other records, and for all of them past
    `_MAX_SHAPES` shapes.
    """

    def __init__(self, rules: Mapping[str, RecordRules]) -> None:
        super().__init__()
        self.rules = rules
        self.whole: dict[str, FastCheck] = {
            kind: SchemaValidator(_record_schema(r)).isinstance_python for kind, r in rules.items()
        }

    def check(self, record: dict[str, Any], kind: Any) -> bool:
        """Check `record` with the dict validator, and learn its shape if it is a new valid one."""
        rules = self.rules.get(kind) if type(kind) is str else None
        if rules is None:
            return False
        valid = self.whole[kind](record)
        if valid and (kind, len(record)) not in self and len(self) < _MAX_SHAPES:
            self[kind, len(record)] = _shape(rules, tuple(record))
        return valid


def compile_fast_check(rules: RecordRules) -> FastCheck:
    """Return a predicate that is True exactly when a parsed record satisfies every field rule.

    Semantic checks that no schema keyword expresses (calendar days, event time, business
    rules) are not included.
    """
    kind = rules.name
    shapes = _Shapes({kind: rules})

    def is_valid(record: dict[str, Any]) -> bool:
        try:
            values, valid = shapes[kind, len(record)]
            return valid(values(record))
        except KeyError:
            return shapes.check(record, kind)

    return is_valid


def compile_fast_union_check(rules: Mapping[str, RecordRules], discriminator: str) -> FastCheck:
    """Like `compile_fast_check` for several record kinds told apart by `discriminator`."""
    shapes = _Shapes(rules)

    def is_valid(record: dict[str, Any]) -> bool:
        try:
            values, valid = shapes[record[discriminator], len(record)]
            return valid(values(record))
        except KeyError:
            return shapes.check(record, record.get(discriminator))
        except TypeError:  # an unhashable kind
            return False

    return is_valid
