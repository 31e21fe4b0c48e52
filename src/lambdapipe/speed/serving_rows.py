"""Accepted records as rows of the realtime tables, with the columns the store declares."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def _accepted(classified: pa.Table, topic: str) -> pa.Table:
    return classified.filter(
        pc.and_(classified.column("accepted"), pc.equal(classified.column("topic"), topic))
    )


def _rows(classified: pa.Table, topic: str, struct: str) -> pa.Table:
    records = _accepted(classified, topic).column(struct).combine_chunks()
    if isinstance(records, pa.ChunkedArray):  # no chunks at all: an empty array of the type
        records = pa.array([], records.type)
    return pa.Table.from_arrays(records.flatten(), names=[f.name for f in records.type])


def event_rows(classified: pa.Table, topic: str) -> pa.Table:
    """`user_events_realtime` columns (without `user_tier`) of the accepted `topic` records."""
    return _rows(classified, topic, "event")


def transaction_rows(classified: pa.Table, topic: str) -> pa.Table:
    """`transactions_realtime` columns (without `user_tier`) of the accepted transactions."""
    return _rows(classified, topic, "transaction")
