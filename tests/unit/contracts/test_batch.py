"""`valid_mask`: one native call per Arrow array, the same verdicts as one record at a time."""

import random

import orjson
import pyarrow as pa
import pytest

from lambdapipe.contracts import Limits, validate_event, validate_transaction
from lambdapipe.contracts.batch import EVENT, TRANSACTION, valid_mask
from lambdapipe.contracts.validate import NATIVE

from .corpus import CASES, NOW, example
from .records import valid_events, valid_transactions


def _records() -> tuple[list[bytes | None], bytes]:
    """Valid and invalid events and transactions, and nulls, with each one's kind."""
    rng = random.Random(11)
    values: list[bytes | None] = []
    kinds = bytearray()
    for kind, records in ((EVENT, valid_events(rng, 3)), (TRANSACTION, valid_transactions(rng))):
        values += [orjson.dumps(r) for r in records]
        kinds += bytes([kind]) * len(records)
    for case in CASES:
        values.append(case.raw)
        kinds.append(TRANSACTION if case.kind == "transaction" else EVENT)
    values += [None, b"", None]
    kinds += bytes([EVENT, TRANSACTION, EVENT])
    order = list(range(len(values)))
    rng.shuffle(order)
    return [values[i] for i in order], bytes(kinds[i] for i in order)


def _one_at_a_time(values: list[bytes | None], kinds: bytes) -> bytes:
    validate = {EVENT: validate_event, TRANSACTION: validate_transaction}
    return bytes(
        int(raw is not None and validate[kind](raw, NOW).ok)
        for raw, kind in zip(values, kinds, strict=True)
    )


def test_mask_equals_the_verdicts_one_at_a_time() -> None:
    values, kinds = _records()
    mask = valid_mask(pa.array(values, pa.binary()), kinds, NOW)
    assert mask == _one_at_a_time(values, kinds)
    assert 0 < sum(mask) < len(mask)


def test_sliced_arrays_read_from_their_offset() -> None:
    values, kinds = _records()
    array = pa.array(values, pa.binary())
    whole = valid_mask(array, kinds, NOW)
    for start, length in [(0, 5), (7, 30), (len(values) - 4, 4), (13, 0)]:
        part = array.slice(start, length)
        assert part.offset == start
        assert valid_mask(part, kinds[start : start + length], NOW) == whole[start : start + length]


def test_empty_and_all_null_arrays() -> None:
    assert valid_mask(pa.array([], pa.binary()), EVENT, NOW) == b""
    assert valid_mask(pa.array([None, None], pa.binary()), TRANSACTION, NOW) == b"\x00\x00"


def test_one_kind_for_the_whole_array_and_string_arrays() -> None:
    login, transaction = orjson.dumps(example("login")), orjson.dumps(example("transaction"))
    assert valid_mask(pa.array([login, transaction]), EVENT, NOW) == b"\x01\x00"
    assert valid_mask(pa.array([transaction.decode()]), TRANSACTION, NOW) == b"\x01"


def test_limits_apply() -> None:
    login = orjson.dumps(example("login"))
    array = pa.array([login])
    assert valid_mask(array, EVENT, NOW, limits=Limits(max_bytes=len(login))) == b"\x01"
    assert valid_mask(array, EVENT, NOW, limits=Limits(max_bytes=len(login) - 1)) == b"\x00"
    early = NOW.replace(year=2020)
    assert valid_mask(array, EVENT, early) == b"\x00"
    assert valid_mask(array, EVENT) == b"\x01"  # the wall clock


def test_wrong_inputs_are_refused() -> None:
    login = orjson.dumps(example("login"))
    with pytest.raises(TypeError):
        valid_mask(pa.array([login], pa.large_binary()), EVENT, NOW)
    with pytest.raises(TypeError):
        valid_mask(pa.array([1, 2]), EVENT, NOW)
    with pytest.raises(ValueError, match="kinds"):
        valid_mask(pa.array([login, login]), b"\x00", NOW)
    with pytest.raises(IndexError):
        valid_mask(pa.array([login]), b"\x09", NOW)
    validity, offsets, data = pa.array([login]).buffers()
    with pytest.raises(ValueError, match="offsets"):
        NATIVE.check_batch(b"\x00\x00", validity, offsets, data, 0, 2, "9", 100_000)
