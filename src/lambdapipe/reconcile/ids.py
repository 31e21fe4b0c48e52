"""The one rule that makes ids comparable across the layers: lower-case canonical UUID text.

ClickHouse returns its UUIDs as text (`toString`), the warehouse stores them as text, and ids
read out of dead letters' raw bytes are whatever the producer wrote; all of them pass through
`canonical_ids`, which is `lambdapipe.warehouse.raw.uuid_strings` (the warehouse's rule) for
every value that is a UUID. A value that is not one cannot name an accepted record: null.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lambdapipe.warehouse.raw import uuid_strings

_SPELLED_AS_UUID = r"^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$"


def canonical_ids(column: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """`column`'s UUIDs as lower-case 8-4-4-4-12 strings; anything that is not a UUID: null."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        lowered = pc.utf8_lower(column.cast(pa.string()))
        spelled = pc.match_substring_regex(lowered, _SPELLED_AS_UUID)
        column = pc.if_else(spelled, lowered, pa.scalar(None, pa.string()))
    return uuid_strings(column)
