"""Drift test: the compiled validator agrees with the reference jsonschema implementation.

The reference runs the schema files as written; our validator runs rules compiled from them. If
someone edits a schema in a way the compiler misreads, these tests disagree.
"""

import random
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource

from lambdapipe.contracts.registry import EVENT_TYPES, schemas_dir
from lambdapipe.contracts.subjects import inline
from lambdapipe.contracts.validate import EVENT_CHECKERS, TRANSACTION_CHECKER, RecordChecker

from .corpus import CASES, EVENT_EXAMPLES, example


@pytest.fixture(scope="module")
def reference() -> dict[str, Draft202012Validator]:
    root = schemas_dir()
    resources = []
    for path in root.rglob("*.json"):
        if "examples" not in path.parts:
            schema = orjson.loads(path.read_bytes())
            resources.append((schema["$id"], Resource.from_contents(schema)))
    registry: Registry[Any] = Registry().with_resources(resources)
    validators = {}
    for name in ("user_event", "user", "product", "transaction"):
        schema = orjson.loads((root / "entities" / f"{name}.json").read_bytes())
        Draft202012Validator.check_schema(schema)
        validators[name] = Draft202012Validator(schema, registry=registry)
    return validators


def test_examples_are_valid_for_the_reference(reference: dict[str, Draft202012Validator]) -> None:
    for event in EVENT_EXAMPLES.values():
        reference["user_event"].validate(event)
    for entity in ("user", "product", "transaction"):
        reference[entity].validate(example(entity))


def test_reference_agrees_on_the_corpus(reference: dict[str, Draft202012Validator]) -> None:
    checked = 0
    for case in CASES:
        if case.reference_differs not in (None, "semantic"):
            continue
        try:
            record = orjson.loads(case.raw)
        except orjson.JSONDecodeError:
            continue
        if case.limits.max_bytes < len(case.raw):
            continue
        schema = "transaction" if case.kind == "transaction" else "user_event"
        expected_valid = case.reference_differs == "semantic"
        assert reference[schema].is_valid(record) == expected_valid, case.name
        checked += 1
    assert checked >= 40


_NASTY_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    99,
    100,
    10_000_000,
    1.5,
    "",
    "x",
    "page_view",
    "purchase",
    "desktop",
    "chrome",
    "USD",
    "completed",
    "credit_card",
    "https://shop.example.com/",
    "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d",
    "5B0C3A8E-8F1D-4C2A-9B7E-1D2F3A4B5C6D",
    "2026-11-26T10:00:00.123Z",
    "2026-11-26T10:00:00Z",
    "2026-11-26",
    "10.0.0.1",
    "256.0.0.1",
    "12.50",
    "12.5",
    "-0.01",
    [],
    {},
    ["a"],
    {"a": 1},
]


def _mutate(rng: random.Random, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    mutated = dict(record)
    for _ in range(rng.randint(1, 2)):
        action = rng.random()
        name = rng.choice(fields)
        if action < 0.15:
            mutated.pop(name, None)
        elif action < 0.25:
            mutated[rng.choice(["extra", "coupon", "amount", "quantity", "page_url"])] = 1
        else:
            mutated[name] = rng.choice(_NASTY_VALUES)
    return mutated


def _agree(checker: RecordChecker, validator: Draft202012Validator, record: dict[str, Any]) -> None:
    ours = checker.schema_violation(record) is None
    assert ours == validator.is_valid(record), record


def test_reference_agrees_on_random_mutations(reference: dict[str, Draft202012Validator]) -> None:
    rng = random.Random(7)
    for _ in range(1_500):
        event_type = rng.choice(EVENT_TYPES)
        event = EVENT_EXAMPLES[event_type]
        fields = sorted(EVENT_CHECKERS[event_type].rules.field_names)
        mutated = _mutate(rng, event, fields)
        kind = mutated.get("event_type")
        checker = EVENT_CHECKERS.get(kind) if isinstance(kind, str) else None
        if checker is None:
            assert not reference["user_event"].is_valid(mutated)
            continue
        _agree(checker, reference["user_event"], mutated)
    transaction = example("transaction")
    fields = sorted(TRANSACTION_CHECKER.rules.field_names)
    for _ in range(500):
        _agree(TRANSACTION_CHECKER, reference["transaction"], _mutate(rng, transaction, fields))


def test_the_registered_copy_accepts_what_the_source_accepts(
    reference: dict[str, Draft202012Validator],
) -> None:
    """The registry's draft-07 copy (inlined, event models closed in one object) is the same
    contract: the jsonschema reference agrees with it on the corpus and on random mutations."""
    registered = {}
    for name in reference:
        schema = inline(f"entities/{name}.json")
        Draft7Validator.check_schema(schema)
        registered[name] = Draft7Validator(schema)
    records: list[tuple[str, Any]] = []
    for case in CASES:
        try:
            record = orjson.loads(case.raw)
        except orjson.JSONDecodeError:
            continue
        records.append(("transaction" if case.kind == "transaction" else "user_event", record))
    rng = random.Random(11)
    for name in ("user", "product", "transaction", *EVENT_TYPES):
        kind = name if name in reference else "user_event"
        record = example(name)
        records += [(kind, _mutate(rng, record, sorted(record))) for _ in range(100)]
    for kind, record in records:
        assert registered[kind].is_valid(record) == reference[kind].is_valid(record), record
