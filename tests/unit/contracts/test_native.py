"""The native check agrees with the ordered Python rules, which are the definition.

Agreement is tested on the corpus (keys shuffled too), on generated valid records, and on
random single mutations of them: the native verdict must equal the Python rules' verdict.
"""

import random
from typing import Any

import orjson
import pytest
from lambdapipe_native import Validator

from lambdapipe.contracts import Reason, validate_event, validate_transaction
from lambdapipe.contracts.native import NativeKind, native_config, native_validator
from lambdapipe.contracts.registry import default_registry
from lambdapipe.contracts.rules import FieldRule, RecordRules, compile_entity
from lambdapipe.contracts.validate import EVENT_KIND, NATIVE

from .corpus import CASES, NOW, UPPER_UUID, Case, example
from .records import native_ok, python_ok, shuffled, valid_events, valid_transactions

CORPUS = [case for case in CASES if case.reason != Reason.TOO_LARGE]


def _validate(raw: bytes, case: Case) -> tuple[Reason | None, str | None]:
    validate = validate_transaction if case.kind == "transaction" else validate_event
    result = validate(raw, NOW, limits=case.limits)
    return result.reason, result.detail


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_corpus_is_refused_natively_in_any_key_order(case: Case) -> None:
    assert not native_ok(case.raw, case.kind, case.limits)
    assert not python_ok(case.raw, case.kind, case.limits)
    try:
        record = orjson.loads(case.raw)
    except orjson.JSONDecodeError:
        return
    if isinstance(record, dict):
        rng = random.Random(case.name)
        for _ in range(3):
            raw = orjson.dumps(shuffled(rng, record))
            assert not native_ok(raw, case.kind, case.limits)
            assert _validate(raw, case) == _validate(case.raw, case)


def test_valid_records_pass_natively_and_parse_like_orjson() -> None:
    rng = random.Random(3)
    for kind, records in (("event", valid_events(rng)), ("transaction", valid_transactions(rng))):
        assert records
        for record in records:
            raw = orjson.dumps(record)
            assert native_ok(raw, kind) and python_ok(raw, kind), record
            parsed = NATIVE.parse(0 if kind == "event" else 1, raw, "9")
            assert parsed is not None
            assert list(parsed.items()) == list(orjson.loads(raw).items())


def test_parse_keeps_orjson_semantics_for_escapes_and_repeated_keys() -> None:
    raw = orjson.dumps(example("page_view")).replace(b"/shop", b"\\/sh\\u006fp")
    raw = raw[:-1] + b',"browser":"safari"}'
    parsed = NATIVE.parse(EVENT_KIND, raw, "9")
    assert parsed is not None
    assert list(parsed.items()) == list(orjson.loads(raw).items())
    assert native_ok(raw, "event") and python_ok(raw, "event")


_NASTY: list[Any] = [
    None, True, False, 0, 1, 99, 100, -1, 2**63 - 1, -(2**63), 1.5, 2.0, "", " ", "é", "\x00", "\n",
    "0.00", "0.01", "-0.01", "-5.00", "99999999.99", "123456789.00", "1e2", "117.5", "1,000.00",
    UPPER_UUID, "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d", "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d\n",
    "10.0.0.1", "256.0.0.1", "01.2.3.4", "https://x", "http://", "ftp://x", "https://" + "a" * 2041,
    "2026-11-26T10:00:00.000Z", "2026-02-29T10:00:00.000Z", "2028-02-29T10:00:00.000Z",
    "2026-04-31T10:00:00.000Z", "2026-11-31T10:00:00.000Z", "2000-02-29T00:00:00.000Z",
    "1900-02-29T00:00:00.000Z", "2026-11-26T12:05:00.000Z", "2026-11-26T12:05:00.001Z",
    "2026-11-26T10:00:00Z", "desktop", "chrome", "USD", "EUR", "completed", "page_view", "login",
    [], {}, ["a"], {"a": 1},
]  # fmt: skip
_LITERALS = [b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809", b"-0",
             b"1E2", b"0.0", b"1e400", b"2e-400", b"NaN", b"tru", b"nul"]  # fmt: skip


def _mutate(rng: random.Random, record: dict[str, Any], pool: list[Any]) -> bytes:
    """One mutation of a valid record: a value, a key, a repeated key, an escape or a byte."""
    mutated = dict(record)
    name = rng.choice(list(record))
    action = rng.random()
    if action < 0.45:
        mutated[name] = rng.choice(pool)
    elif action < 0.5:
        mutated[name] = "@@literal@@"
    elif action < 0.6:
        del mutated[name]
    elif action < 0.65:
        mutated[rng.choice(["extra", "coupon", "amount", "quantity", "page_url"])] = 1
    raw = orjson.dumps(shuffled(rng, mutated)).replace(b'"@@literal@@"', rng.choice(_LITERALS))
    if 0.65 <= action < 0.75:
        value = orjson.dumps(rng.choice(pool))
        raw = raw[:-1] + b',"' + name.encode() + b'":' + value + b"}"
    elif 0.75 <= action < 0.85 and b'"' in raw:
        # A character of a string written as a \u escape (the decoded value is unchanged).
        quotes = [i for i, c in enumerate(raw) if c == ord('"')]
        at = rng.choice(quotes) + 1
        if raw[at : at + 1].isalnum():
            raw = raw[:at] + b"\\u%04x" % raw[at] + raw[at + 1 :]
    elif action >= 0.85:
        data = bytearray(raw)
        position = rng.randrange(len(data))
        if rng.random() < 0.5:
            data[position] = rng.choice(b'0123456789abcdefABCDEF-.:TZ"{}[],\\ \xc3\xff')
        else:
            del data[position]
        raw = bytes(data)
    return raw


def test_native_verdict_equals_python_verdict_on_random_mutations() -> None:
    rng = random.Random(20261126)
    for kind, records in (
        ("event", valid_events(rng, per_type=40)),
        ("transaction", valid_transactions(rng, count=200)),
    ):
        pool = _NASTY + [v for r in records for v in r.values()]
        verdicts = {True: 0, False: 0}
        for _ in range(6_000):
            raw = _mutate(rng, rng.choice(records), pool)
            expected = python_ok(raw, kind)
            assert native_ok(raw, kind) == expected, raw
            verdicts[expected] += 1
        # Both verdicts are well represented, so agreement means something.
        assert min(verdicts.values()) > 600, verdicts


def _code_rules(max_length: int) -> RecordRules:
    """A record kind made up here: the native check knows only what it is given."""
    return RecordRules(
        name="code",
        fields=(
            FieldRule("code", "string", pattern="^[A-Z]{2}[0-9]$", max_length=max_length),
            FieldRule("n", "integer", nullable=True, minimum=1, maximum=5),
            FieldRule("day", "string", pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2}$", format="date"),
        ),
        required=("code",),
        closed=True,
    )


def test_rules_come_from_configuration_only() -> None:
    loose = native_validator({"codes": NativeKind((_code_rules(3),))}, "timestamp")
    tight = native_validator({"codes": NativeKind((_code_rules(2),))}, "timestamp")
    for raw, ok in [
        (b'{"code":"AB1"}', True),
        (b'{"code":"AB1","n":null,"day":"2024-02-29"}', True),
        (b'{"code":"AB1","day":"2023-02-29"}', False),
        (b'{"code":"ab1"}', False),
        (b'{"code":"AB1","n":6}', False),
        (b'{"code":"AB1","x":1}', False),
        (b'{"n":1}', False),
    ]:
        assert loose.check(0, raw, "") == ok, raw
        assert not tight.check(0, raw, "")


@pytest.mark.parametrize("entity", ["user", "product", "transaction"])
def test_every_entity_schema_configures_the_native_check(entity: str) -> None:
    """Every schema pattern compiles in Rust, and the entity's example passes."""
    rules = compile_entity(default_registry(), entity)
    validator = native_validator({entity: NativeKind((rules,))}, "timestamp")
    assert validator.check(0, orjson.dumps(example(entity)), "9")
    assert not validator.check(0, b"{}", "9")


def test_bad_configuration_is_refused() -> None:
    config = native_config({"codes": NativeKind((_code_rules(3),))}, "timestamp")
    with pytest.raises(ValueError, match="pattern"):
        Validator(config.replace("^[A-Z]{2}[0-9]$", "^[A-Z"))
    with pytest.raises(ValueError):
        Validator("{}")


def test_odd_inputs_are_not_accepted() -> None:
    raw = orjson.dumps(example("login"))
    assert native_ok(raw, "event")
    for odd in (bytearray(raw), memoryview(raw), raw.decode(), None, 42):
        assert not NATIVE.check(EVENT_KIND, odd, "9")
        assert NATIVE.parse(EVENT_KIND, odd, "9") is None
    with pytest.raises(IndexError):
        NATIVE.check(7, raw, "9")
