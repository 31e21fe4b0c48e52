"""Rejected and late records as dead letters: the rows of `dead_letters_realtime` and the DLQ.

A dead letter keeps the original bytes and says where they came from (topic, partition,
offset), why (a contracts `Reason` or `late`), and when (the micro-batch time).
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

# Headers of a record on the Kafka dead-letter topic; the value and key are the original bytes.
DLQ_HEADERS: Final = (
    "reason",
    "detail",
    "source_topic",
    "source_partition",
    "source_offset",
    "dead_lettered_at",
    "event_type",
)
# (dead-letter column, classified column)
_COLUMNS: Final = (
    ("dead_lettered_at", "batch_time"),
    ("source_topic", "topic"),
    ("source_partition", "partition"),
    ("source_offset", "offset"),
    ("reason", "reason"),
    ("event_type", "event_type"),
    ("detail", "detail"),
    ("raw", "value"),
    ("key", "key"),
)


def dead_letter_rows(classified: pa.Table) -> pa.Table:
    """The records that were not accepted, as dead-letter rows (plus the original key)."""
    dead = classified.filter(pc.invert(classified.column("accepted")))
    columns = [dead.column(source) for _, source in _COLUMNS]
    detail = [name for name, _ in _COLUMNS].index("detail")
    columns[detail] = pc.fill_null(columns[detail], "")
    return pa.Table.from_arrays(columns, names=[name for name, _ in _COLUMNS])
