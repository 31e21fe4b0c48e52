"""The Python validator: examples pass, every corpus case gets its reason, nothing raises."""

import random

import orjson
import pytest

from lambdapipe.contracts import (
    Limits,
    Reason,
    ValidationResult,
    validate_event,
    validate_transaction,
)
from lambdapipe.contracts.registry import EVENT_TYPES

from .corpus import CASES, EVENT_EXAMPLES, NOW, Case, example, with_


def _validate(case: Case) -> ValidationResult:
    validate = validate_transaction if case.kind == "transaction" else validate_event
    return validate(case.raw, NOW, limits=case.limits)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_example_is_valid(event_type: str) -> None:
    result = validate_event(orjson.dumps(EVENT_EXAMPLES[event_type]), NOW)
    assert result == ValidationResult(True, None, None, EVENT_EXAMPLES[event_type])


def test_transaction_example_is_valid() -> None:
    assert validate_transaction(orjson.dumps(example("transaction")), NOW).ok


def test_wall_clock_is_the_default_now() -> None:
    assert validate_event(with_("login", timestamp="2020-01-01T00:00:00.000Z")).ok
    assert validate_event(with_("login", timestamp="2999-01-01T00:00:00.000Z")).reason == (
        Reason.FUTURE_TIMESTAMP
    )


def test_skew_boundary_is_inclusive() -> None:
    assert validate_event(with_("login", timestamp="2026-11-26T12:05:00.000Z"), NOW).ok


def test_skew_is_configurable() -> None:
    raw = with_("login", timestamp="2026-11-26T12:01:00.000Z")
    assert validate_event(raw, NOW).ok
    assert not validate_event(raw, NOW, limits=Limits(max_future_skew=NOW - NOW)).ok


def test_nullable_referrer_is_valid() -> None:
    assert validate_event(with_("page_view", referrer=None), NOW).ok


def test_corpus_is_large_and_covers_every_reason() -> None:
    assert len(CASES) >= 40
    assert {case.reason for case in CASES} == set(Reason)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_invalid_case_gets_its_reason(case: Case) -> None:
    result = _validate(case)
    assert (result.ok, result.reason) == (False, case.reason)
    if case.detail is not None:
        assert result.detail == case.detail
    assert result.event is None


def _mutations(rng: random.Random) -> list[bytes]:
    samples = [orjson.dumps(e) for e in EVENT_EXAMPLES.values()]
    out = []
    for _ in range(3_000):
        raw = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(raw))
            action = rng.random()
            if action < 0.4:
                raw[position] = rng.randrange(256)
            elif action < 0.7:
                del raw[position]
            else:
                raw.insert(position, rng.choice(b'{}[]",:0123456789-.eE\\ntfu'))
        out.append(bytes(raw))
    return out


def test_fuzz_never_raises() -> None:
    rng = random.Random(20261126)
    inputs = [rng.randbytes(rng.randint(0, 300)) for _ in range(3_000)] + _mutations(rng)
    for raw in inputs:
        for validate in (validate_event, validate_transaction):
            result = validate(raw, NOW)
            assert isinstance(result, ValidationResult)
            assert result.ok == (result.reason is None) == (result.event is not None)


@pytest.mark.parametrize("raw", [None, 42, "not bytes", bytearray(b"{}"), memoryview(b"[]")])
def test_odd_input_types_never_raise(raw: object) -> None:
    assert not validate_event(raw, NOW).ok  # type: ignore[arg-type]
