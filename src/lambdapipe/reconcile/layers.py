"""What each layer holds for one day, read as Arrow: the speed layer from the serving store's
realtime tables (as the reader), the batch layer from the warehouse's staging views and marts.

Both sides give the same four tables (`LayerRows`), ids already passed through the one rule
(`ids.canonical_ids`), so `compare` never needs to know where a row came from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import pyarrow as pa

from lambdapipe.errors import Problem
from lambdapipe.reconcile.ids import canonical_ids
from lambdapipe.serving.store import ServingStore, StoreError
from lambdapipe.warehouse.base import Warehouse

# The per-type counts of a session that the funnel steps read (docs/data-model.md).
FUNNEL_COUNTS: Final = (
    "page_views",
    "product_views",
    "add_to_carts",
    "checkout_starts",
    "purchases",
)
_ID_COLUMNS: Final = ("event_id", "session_id", "transaction_id")
# Batch dead letters are read from the day before to this many days after (the batch's
# default lookback reads records that arrived up to D + 3).
NEIGHBOUR_DAYS: Final = 3


@dataclass(frozen=True)
class LayerRows:
    """One layer's rows for a day.

    events: event_id, event_type, user_tier, session_id (one row per accepted copy);
    transactions: transaction_id, status, user_tier, total_amount;
    sessions: session_id, user_tier and the FUNNEL_COUNTS (sessions that started on the day);
    dead_letters: source_topic, source_partition, source_offset, reason, raw (bytes),
    dead_lettered_at (the speed layer's: when; the batch layer's: null) and batch_day (the
    batch layer's, of D and its neighbours; the speed layer's: null).
    """

    events: pa.Table
    transactions: pa.Table
    sessions: pa.Table
    dead_letters: pa.Table
    # speed: the newest event time in the store; batch: None
    newest_event: datetime | None = None
    # batch: the day has rows in RAW (the batch ran); speed: True
    loaded: bool = True

    def canonical(self) -> LayerRows:
        """The same rows with every id column in lower-case canonical text."""
        return replace(
            self,
            events=_canonical(self.events),
            transactions=_canonical(self.transactions),
            sessions=_canonical(self.sessions),
        )


def _canonical(table: pa.Table) -> pa.Table:
    for name in _ID_COLUMNS:
        if name in table.column_names:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, canonical_ids(table.column(name)))
    return table


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of `day`."""
    start = datetime.combine(day, time(), UTC)
    return start, start + timedelta(days=1)


def speed_rows(store: ServingStore, day: date) -> LayerRows:
    """The speed layer's rows of `day` in the serving store (event time; sessions by start).

    Dead letters are read from the day before on (when they were dead-lettered), whatever their
    event time: a late record is dead-lettered after its day, and `compare` gives each one its
    day (the batch's for the same Kafka record, else its event time).
    """
    start, end = day_bounds(day)
    span = {"start": start, "end": end}
    in_day = (
        "{column} >= {{start:DateTime64(3, 'UTC')}} AND {column} < {{end:DateTime64(3, 'UTC')}}"
    )
    try:
        events = store.query_arrow(
            "SELECT toString(event_id) AS event_id, event_type, user_tier, "
            "toString(session_id) AS session_id "
            f"FROM user_events_realtime WHERE {in_day.format(column='timestamp')}",
            span,
        )
        transactions = store.query_arrow(
            "SELECT toString(transaction_id) AS transaction_id, status, user_tier, total_amount "
            f"FROM transactions_realtime WHERE {in_day.format(column='timestamp')}",
            span,
        )
        sessions = store.query_arrow(
            "SELECT toString(session_id) AS session_id, user_tier, "
            f"{', '.join(FUNNEL_COUNTS)} "
            f"FROM user_sessions_realtime WHERE {in_day.format(column='session_start')}",
            span,
        )
        dead_letters = store.query_arrow(
            "SELECT source_topic, source_partition, source_offset, reason, raw, dead_lettered_at "
            "FROM dead_letters_realtime "
            "WHERE dead_lettered_at >= {start:DateTime64(3, 'UTC')} - INTERVAL 1 DAY",
            span,
        )
        newest = store.query_arrow(
            "SELECT max(timestamp) AS newest, count() AS n FROM user_events_realtime"
        )
    except StoreError as exc:
        raise Problem(
            f"cannot read the speed layer's tables: {exc}",
            hint="is `lambdapipe serve` running (or the ClickHouse server reachable)?",
        ) from None
    seen = newest.to_pylist()[0]
    return LayerRows(
        events,
        transactions,
        sessions,
        _dead_letters(dead_letters),
        newest_event=seen["newest"] if seen["n"] else None,
    ).canonical()


def batch_rows(warehouse: Warehouse, day: date) -> LayerRows:
    """The batch layer's rows of `day`: staging events and transactions (deduplicated, tier as
    of event time), the `user_sessions` mart, RAW dead letters (with their raw bytes) of the
    day and its neighbours."""
    d = f"DATE '{day.isoformat()}'"
    try:
        events = warehouse.query_arrow(
            "SELECT event_id, event_type, user_tier, session_id FROM staging.stg_shop__events "
            f"WHERE batch_day = {d}"
        )
        transactions = warehouse.query_arrow(
            "SELECT transaction_id, status, user_tier, total_amount "
            f"FROM staging.stg_shop__transactions WHERE batch_day = {d}"
        )
        sessions = warehouse.query_arrow(
            f"SELECT session_id, user_tier, {', '.join(FUNNEL_COUNTS)} "
            f"FROM marts.user_sessions WHERE session_date = {d}"
        )
        # the neighbouring days' too: a speed dead letter of another batch day is not D's
        near = (
            f"batch_day BETWEEN DATE '{(day - timedelta(days=1)).isoformat()}' "
            f"AND DATE '{(day + timedelta(days=NEIGHBOUR_DAYS)).isoformat()}'"
        )
        dead_letters = warehouse.query_arrow(
            "SELECT source_topic, source_partition, source_offset, reason, raw, batch_day "
            f"FROM raw.dead_letters WHERE {near}"
        )
        loaded = warehouse.query_arrow(
            "SELECT "
            + " + ".join(
                f"(SELECT count(*) FROM raw.{table} WHERE batch_day = {d})"
                for table in ("user_events", "transactions", "dead_letters")
            )
            + " AS n"
        )
    except Problem:
        raise
    except Exception as exc:  # the driver's own error types differ per warehouse
        raise Problem(
            f"cannot read the batch layer's tables in {warehouse.location}: {exc}",
            hint="run `lambdapipe batch run --date D` first (it loads RAW and builds the marts)",
        ) from None
    return LayerRows(
        events,
        transactions,
        sessions,
        _dead_letters(dead_letters),
        loaded=bool(loaded.column("n")[0].as_py()),
    ).canonical()


def _dead_letters(rows: pa.Table) -> pa.Table:
    """Dead letters with the columns `compare` reads: raw as bytes, both time columns."""
    n = rows.num_rows
    raw = rows.column("raw")
    if not pa.types.is_binary(raw.type):
        raw = raw.cast(pa.binary())
    at = (
        rows.column("dead_lettered_at").cast(pa.timestamp("ms", "UTC"))
        if "dead_lettered_at" in rows.column_names
        else pa.nulls(n, pa.timestamp("ms", "UTC"))
    )
    return pa.table(
        {
            "source_topic": rows.column("source_topic").cast(pa.string()),
            "source_partition": rows.column("source_partition").cast(pa.int64()),
            "source_offset": rows.column("source_offset").cast(pa.int64()),
            "reason": rows.column("reason").cast(pa.string()),
            "raw": raw,
            "dead_lettered_at": at,
            "batch_day": (
                rows.column("batch_day").cast(pa.date32())
                if "batch_day" in rows.column_names
                else pa.nulls(n, pa.date32())
            ),
        }
    )
