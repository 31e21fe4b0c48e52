"""Compiles JSON Schemas into flat field rules that every validator backend interprets.

Only the keywords our schemas use are supported; any other keyword fails the compilation, so a
schema cannot gain a constraint that the derived validators silently ignore.
"""

import re
from dataclasses import dataclass
from typing import Any

from lambdapipe.contracts.reasons import Reason
from lambdapipe.contracts.registry import EVENT_TYPES, Schema, SchemaRegistry

_FIELD_KEYWORDS = frozenset(
    {
        "description",
        "title",
        "format",
        "x-rejection-reason",
        "$ref",
        "anyOf",
        "type",
        "pattern",
        "enum",
        "const",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
    }
)
_OBJECT_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "title",
        "description",
        "$ref",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "unevaluatedProperties",
    }
)
_JSON_TYPES = frozenset({"string", "integer", "boolean"})


class SchemaCompileError(ValueError):
    """A schema uses a construct the derived validators do not implement."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    """Everything a validator must check about one property."""

    name: str
    json_type: str
    nullable: bool = False
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    format: str | None = None
    reason: Reason = Reason.SCHEMA_VIOLATION
    kind: str | None = None
    """The `common.json` definition the field refers to (uuid, money, ...), if any."""

    @property
    def python_pattern(self) -> re.Pattern[str] | None:
        """The pattern for Python's `re`; a final `$` becomes `\\Z` so "x\\n" does not match."""
        if self.pattern is None:
            return None
        return re.compile(_anchor_end(self.pattern, r"\Z"))

    @property
    def java_pattern(self) -> str | None:
        """The pattern for Java's regex engine (Spark `rlike`), strictly anchored the same way."""
        return None if self.pattern is None else _anchor_end(self.pattern, r"\z")


@dataclass(frozen=True, slots=True)
class RecordRules:
    """The compiled schema of one record kind: an event type or an entity."""

    name: str
    fields: tuple[FieldRule, ...]
    required: tuple[str, ...]
    closed: bool

    @property
    def field_names(self) -> frozenset[str]:
        """The declared property names."""
        return frozenset(f.name for f in self.fields)

    def field(self, name: str) -> FieldRule:
        """Return the rule of the property `name`."""
        return next(f for f in self.fields if f.name == name)


def _anchor_end(pattern: str, end: str) -> str:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + end
    return pattern


def _merge(into: dict[str, Any], schema: Schema, key: str) -> None:
    """Add one keyword to `into`; a second enum narrows the first, other conflicts fail."""
    if key in into and into[key] != schema[key]:
        if key != "enum":
            raise SchemaCompileError(f"conflicting {key!r}: {into[key]!r} vs {schema[key]!r}")
        into["enum"] = [v for v in into["enum"] if v in schema["enum"]]
        return
    into[key] = schema[key]


def _flatten(reg: SchemaRegistry, schema: Schema, doc: str, out: dict[str, Any]) -> None:
    """Merge `schema` and everything it `$ref`s into `out` (allOf semantics)."""
    unknown = set(schema) - _FIELD_KEYWORDS
    if unknown:
        raise SchemaCompileError(f"{doc}: unsupported keywords {sorted(unknown)}")
    if "$ref" in schema:
        target, target_doc = reg.resolve(schema["$ref"], doc)
        if "#/$defs/" in schema["$ref"]:
            out.setdefault("kind", schema["$ref"].rsplit("/", 1)[-1])
        _flatten(reg, target, target_doc, out)
    if "anyOf" in schema:
        branches = schema["anyOf"]
        non_null = [b for b in branches if b != {"type": "null"}]
        if len(branches) != 2 or len(non_null) != 1:
            raise SchemaCompileError(f"{doc}: anyOf is only supported as [X, {{type: null}}]")
        out["nullable"] = True
        _flatten(reg, non_null[0], doc, out)
    for key in schema.keys() - {"$ref", "anyOf", "description", "title"}:
        if key == "type" and isinstance(schema["type"], list):
            types = set(schema["type"])
            if "null" in types:
                out["nullable"] = True
            (single,) = types - {"null"}
            _merge(out, {"type": single}, "type")
        elif key == "const":
            _merge(out, {"enum": [schema["const"]]}, "enum")
        else:
            _merge(out, schema, key)


def _field_rule(reg: SchemaRegistry, name: str, parts: list[tuple[Schema, str]]) -> FieldRule:
    """Build the rule of one property from every schema layer that declares it."""
    flat: dict[str, Any] = {}
    for schema, doc in parts:
        _flatten(reg, schema, doc, flat)
    json_type = flat.get("type")
    if json_type not in _JSON_TYPES:
        raise SchemaCompileError(f"property {name!r} has unsupported type {json_type!r}")
    enum = flat.get("enum")
    return FieldRule(
        name=name,
        json_type=json_type,
        nullable=flat.get("nullable", False),
        pattern=flat.get("pattern"),
        enum=None if enum is None else tuple(enum),
        minimum=flat.get("minimum"),
        maximum=flat.get("maximum"),
        min_length=flat.get("minLength"),
        max_length=flat.get("maxLength"),
        format=flat.get("format"),
        reason=Reason(flat.get("x-rejection-reason", Reason.SCHEMA_VIOLATION)),
        kind=flat.get("kind"),
    )


def _object_layers(reg: SchemaRegistry, schema: Schema, doc: str) -> list[tuple[Schema, str]]:
    """The object schema followed by its `$ref`ed bases, base first."""
    layers = [(schema, doc)]
    while "$ref" in layers[0][0]:
        layers.insert(0, reg.resolve(layers[0][0]["$ref"], layers[0][1]))
    return layers


def compile_record(reg: SchemaRegistry, name: str, doc: str) -> RecordRules:
    """Compile the object schema in document `doc` into `RecordRules` named `name`."""
    layers = _object_layers(reg, reg.document(doc), doc)
    props: dict[str, list[tuple[Schema, str]]] = {}
    required: list[str] = []
    closed = False
    for layer, layer_doc in layers:
        unknown = set(layer) - _OBJECT_KEYWORDS
        if unknown:
            raise SchemaCompileError(f"{layer_doc}: unsupported keywords {sorted(unknown)}")
        for prop, prop_schema in layer.get("properties", {}).items():
            props.setdefault(prop, []).append((prop_schema, layer_doc))
        required += [r for r in layer.get("required", []) if r not in required]
        closed |= layer.get("additionalProperties") is False
        closed |= layer.get("unevaluatedProperties") is False
    fields = tuple(_field_rule(reg, prop, parts) for prop, parts in props.items())
    return RecordRules(name=name, fields=fields, required=tuple(required), closed=closed)


def compile_events(reg: SchemaRegistry) -> dict[str, RecordRules]:
    """Compile the rules of every event type, keyed by event type."""
    return {et: compile_record(reg, et, f"events/{et}.json") for et in EVENT_TYPES}


def compile_entity(reg: SchemaRegistry, name: str) -> RecordRules:
    """Compile the rules of one flat entity schema (user, product, transaction)."""
    return compile_record(reg, name, f"entities/{name}.json")


def entity_records(reg: SchemaRegistry, entity: str) -> list[RecordRules]:
    """The record kinds stored under `entity`: the nine event types for `user_event`."""
    if entity == "user_event":
        return list(compile_events(reg).values())
    return [compile_entity(reg, entity)]


def merged_fields(records: list[RecordRules]) -> list[tuple[FieldRule, bool]]:
    """The union of the records' fields in first-declared order, each with whether it can be absent.

    A field can be absent (or null) unless every record requires it and none allows null; that
    is what a table or struct holding all the records needs to know.
    """
    versions: dict[str, list[FieldRule]] = {}
    for record in records:
        for rule in record.fields:
            versions.setdefault(rule.name, []).append(rule)
    always = set.intersection(*(set(r.required) for r in records))
    return [
        (rules[0], name not in always or any(r.nullable for r in rules))
        for name, rules in versions.items()
    ]
