"""Verdicts for a whole Arrow array of raw records in one native call (for the speed layer).

`valid_mask` reads a `BinaryArray`'s buffers in place (validity, offsets, data, and its offset
when sliced) and returns one byte per record: 1 when the record is valid, 0 otherwise (nulls
included). A 0 says nothing about why: `validate_event` / `validate_transaction` name the
reason, and only need to run for those records.
"""

from datetime import datetime
from typing import Final

import pyarrow as pa

from lambdapipe.contracts.validate import (
    DEFAULT_LIMITS,
    EVENT_KIND,
    NATIVE,
    TRANSACTION_KIND,
    Limits,
    future_limit,
)

EVENT: Final = EVENT_KIND
"""The kind number of an `events` record."""
TRANSACTION: Final = TRANSACTION_KIND
"""The kind number of a `transactions` record."""


def valid_mask(
    values: pa.Array,
    kinds: int | bytes,
    now: datetime | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """One byte per record of `values` (a pyarrow binary array): 1 valid, 0 not.

    `kinds` is `EVENT` or `TRANSACTION` for the whole array, or one such byte per record.
    `now` (default: the wall clock) bounds the event time, as in `validate_event`.
    """
    if not (pa.types.is_binary(values.type) or pa.types.is_string(values.type)):
        raise TypeError(f"expected a binary array (32-bit offsets), got {values.type}")
    if isinstance(kinds, int):
        kinds = bytes([kinds]) * len(values)
    validity, offsets, data = values.buffers()
    return NATIVE.check_batch(
        kinds,
        validity,
        offsets,
        data if data is not None else b"",
        values.offset,
        len(values),
        future_limit(now, limits.max_future_skew),
        limits.max_bytes,
    )
