"""The Python validator: examples pass, every corpus case gets its reason, nothing raises."""

import random
import uuid

import orjson
import pytest

from lambdapipe.contracts import (
    Limits,
    Reason,
    ValidationResult,
    fastpath,
    validate_event,
    validate_transaction,
)
from lambdapipe.contracts.registry import EVENT_TYPES
from lambdapipe.contracts.validate import (
    _EVENT_RULES,
    EVENT_CHECKERS,
    TRANSACTION_CHECKER,
    calendar_ok,
    events_fast_check,
)

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


def test_fast_and_slow_paths_agree_on_the_corpus() -> None:
    """The slow path names a violation whenever the native fast path rejects, and vice versa."""
    for case in CASES:
        try:
            record = orjson.loads(case.raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        checker = (
            TRANSACTION_CHECKER
            if case.kind == "transaction"
            else EVENT_CHECKERS.get(str(record.get("event_type")))
        )
        if checker is None:
            continue
        fast_ok = checker.fast_check(record)
        violation = checker.schema_violation(record)
        if case.kind == "event":
            assert events_fast_check(record) == fast_ok, case.name
        if not fast_ok:
            assert violation is not None, case.name
        elif violation is not None:
            # Calendar days are the one schema-level check left out of the native fast path.
            field = violation[1].removeprefix("$.")
            assert not calendar_ok(record[field]), case.name


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


def _slow_path_accepts(record: dict[str, object]) -> bool:
    kind = record.get("event_type")
    checker = EVENT_CHECKERS.get(kind) if isinstance(kind, str) else None
    if checker is None:
        return False
    violation = checker.schema_violation(record)
    # Calendar days are left out of the fast path (see the corpus test above).
    return violation is None or (
        violation[0] == Reason.BAD_TIMESTAMP
        and not calendar_ok(str(record[violation[1].removeprefix("$.")]))
    )


def _shuffled(rng: random.Random, record: dict[str, object]) -> dict[str, object]:
    keys = list(record)
    rng.shuffle(keys)
    return {key: record[key] for key in keys}


def _generated_valid_events(rng: random.Random) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for event_type, valid in EVENT_EXAMPLES.items():
        rules = EVENT_CHECKERS[event_type].rules
        optional = [f.name for f in rules.fields if f.name not in rules.required]
        for _ in range(20):
            event = dict(valid)
            for name in optional:
                if name in event and rng.random() < 0.5:
                    del event[name]
            if rng.random() < 0.3 and rules.field("referrer").nullable:
                event["referrer"] = None
            event["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            events.append(_shuffled(rng, event))
    return events


def test_fast_path_agrees_with_slow_path_in_any_key_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid events and corpus records, keys shuffled: tuple shapes, dict validator, slow path."""
    rng = random.Random(3)
    records = _generated_valid_events(rng)
    assert all(events_fast_check(r) and _slow_path_accepts(r) for r in records)
    for case in CASES:
        if case.kind != "event" or case.reason == Reason.TOO_LARGE:
            continue
        try:
            record = orjson.loads(case.raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records += [_shuffled(rng, record) for _ in range(3)]
            for shuffled in records[-3:]:
                result = validate_event(orjson.dumps(shuffled), NOW, limits=case.limits)
                assert (result.reason, result.detail) == (
                    _validate(case).reason,
                    _validate(case).detail,
                )
    monkeypatch.setattr(fastpath, "_MAX_SHAPES", 0)
    dict_only = fastpath.compile_fast_union_check(_EVENT_RULES, "event_type")
    for record in records:
        assert events_fast_check(record) == dict_only(record) == _slow_path_accepts(record), record
