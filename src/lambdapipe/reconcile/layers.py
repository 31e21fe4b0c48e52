"""What each layer holds for one day, read as Arrow: the speed layer from the serving store's
realtime tables (as the reader), the batch layer from the warehouse's staging views and marts.

Both sides give the same four tables (`LayerRows`), ids already passed through the one rule
(`ids.canonical_ids`), so `compare` never needs to know where a row came from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter
from typing import Final

import pyarrow as pa

from lambdapipe.errors import Problem
from lambdapipe.reconcile.digests import Buckets, Engine, bucket_key, differing, digest_sql
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
FUNNEL_STEPS: Final = ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
_ID_COLUMNS: Final = ("event_id", "session_id", "transaction_id")
# Batch dead letters are read from the day before to this many days after (the batch's
# default lookback reads records that arrived up to D + 3).
NEIGHBOUR_DAYS: Final = 3


@dataclass(frozen=True)
class LayerRows:
    """One layer's rows for a day (events, transactions and sessions: all of them, or those of
    the buckets `read_day` found differing) and the day's metric values.

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
    # metric, key, value (DECIMAL(38, 2)): each metric of the whole day, counted by its engine
    values: pa.Table
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


def speed_rows(store: ServingStore, day: date, buckets: Buckets | None = None) -> LayerRows:
    """The speed layer's rows of `day` in the serving store (event time; sessions by start),
    only those of `buckets` when given.

    Dead letters are read from the day before on (when they were dead-lettered), whatever their
    event time: a late record is dead-lettered after its day, and `compare` gives each one its
    day (the batch's for the same Kafka record, else its event time).
    """
    start, end = day_bounds(day)
    span = {"start": start, "end": end}
    sources = _speed_sources()
    only = "" if buckets is None else f" AND {buckets.clickhouse_filter('session_id')}"
    try:
        events = store.query_arrow(
            "SELECT toString(event_id) AS event_id, event_type, user_tier, "  # noqa: S608
            f"toString(session_id) AS session_id FROM {sources['events'][:-1]}{only})",
            span,
        )
        transactions = store.query_arrow(
            "SELECT toString(transaction_id) AS transaction_id, status, user_tier, total_amount "  # noqa: S608
            f"FROM {sources['transactions'][:-1]}{only})",
            span,
        )
        sessions = store.query_arrow(
            "SELECT toString(session_id) AS session_id, user_tier, "  # noqa: S608
            f"{', '.join(FUNNEL_COUNTS)} FROM {sources['sessions'][:-1]}{only})",
            span,
        )
        values = _values(
            {t: store.query_arrow(sql, span) for t, sql in _totals_sql(sources).items()}
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
        raise _unreadable_speed(exc) from None
    seen = newest.to_pylist()[0]
    return LayerRows(
        events,
        transactions,
        sessions,
        _dead_letters(dead_letters),
        values,
        newest_event=seen["newest"] if seen["n"] else None,
    ).canonical()


def _unreadable_speed(exc: Exception) -> Problem:
    return Problem(
        f"cannot read the speed layer's tables: {exc}",
        hint="is `lambdapipe serve` running (or the ClickHouse server reachable)?",
    )


def _speed_sources() -> dict[str, str]:
    """The speed layer's units of the day, per table: a FROM item (the day as parameters)."""
    in_day = (
        "{column} >= {{start:DateTime64(3, 'UTC')}} AND {column} < {{end:DateTime64(3, 'UTC')}}"
    )
    return {
        "events": f"(SELECT * FROM user_events_realtime WHERE {in_day.format(column='timestamp')})",  # noqa: S608
        "transactions": "(SELECT * FROM transactions_realtime "  # noqa: S608
        f"WHERE {in_day.format(column='timestamp')})",
        "sessions": "(SELECT * FROM user_sessions_realtime "  # noqa: S608
        f"WHERE {in_day.format(column='session_start')})",
    }


def _batch_sources(day: date) -> dict[str, str]:
    d = f"DATE '{day.isoformat()}'"
    return {
        "events": f"(SELECT * FROM staging.stg_shop__events WHERE batch_day = {d})",  # noqa: S608
        "transactions": f"(SELECT * FROM staging.stg_shop__transactions WHERE batch_day = {d})",  # noqa: S608
        "sessions": f"(SELECT * FROM marts.user_sessions WHERE session_date = {d})",  # noqa: S608
    }


def _totals_sql(sources: dict[str, str]) -> dict[str, str]:
    """Per table, the day's units grouped by what the metrics count them by: one scan each,
    the same SQL in both layers' engines (`_values` turns them into the metrics)."""
    flags = ", ".join(
        f"CAST(sum(CASE WHEN {c} > 0 THEN 1 ELSE 0 END) AS BIGINT) AS {c}" for c in FUNNEL_COUNTS
    )
    return {
        "events": "SELECT event_type, user_tier, CAST(count(*) AS BIGINT) AS n "  # noqa: S608
        f"FROM {sources['events']} AS units GROUP BY event_type, user_tier",
        "transactions": "SELECT status, user_tier, CAST(count(*) AS BIGINT) AS n, "  # noqa: S608
        "CAST(sum(total_amount) AS DECIMAL(38, 2)) AS amount "
        f"FROM {sources['transactions']} AS units GROUP BY status, user_tier",
        "sessions": f"SELECT user_tier, CAST(count(*) AS BIGINT) AS n, {flags} "  # noqa: S608
        f"FROM {sources['sessions']} AS units GROUP BY user_tier",
    }


def _values(totals: dict[str, pa.Table]) -> pa.Table:
    """Each metric's value (metric, key, value as DECIMAL(38, 2)) from a layer's totals (dead
    letters are counted by `compare`, once their day is known)."""
    import duckdb

    con = duckdb.connect()
    try:
        for name, table in totals.items():
            con.register(f"t_{name}", table)
        number = "CAST({} AS DECIMAL(38, 2))"
        parts = [
            f"SELECT 'events' AS metric, event_type || '/' || user_tier AS key, "  # noqa: S608
            f"{number.format('n')} AS value FROM t_events",
            f"SELECT 'transactions', status || '/' || user_tier, {number.format('n')} "  # noqa: S608
            "FROM t_transactions",
            f"SELECT 'transactions_by_tier', user_tier, {number.format('sum(n)')} "  # noqa: S608
            "FROM t_transactions GROUP BY user_tier",
            *(
                f"SELECT '{name}', user_tier, {number.format('sum(amount)')} "  # noqa: S608
                f"FROM t_transactions WHERE {condition} GROUP BY user_tier"
                for name, condition in (
                    ("gross_bookings", "true"),
                    ("revenue", "status = 'completed'"),
                    ("refunds", "status = 'refunded'"),
                )
            ),
            f"SELECT 'sessions', user_tier, {number.format('n')} FROM t_sessions",  # noqa: S608
            f"SELECT 'funnel', 'sessions', {number.format('coalesce(sum(n), 0)')} FROM t_sessions",  # noqa: S608
            *(
                f"SELECT 'funnel', '{step}', {number.format(f'coalesce(sum({column}), 0)')} "  # noqa: S608
                "FROM t_sessions"
                for column, step in zip(FUNNEL_COUNTS, FUNNEL_STEPS, strict=True)
            ),
        ]
        return con.sql(" UNION ALL ".join(parts)).to_arrow_table()
    finally:
        con.close()


def batch_rows(warehouse: Warehouse, day: date, buckets: Buckets | None = None) -> LayerRows:
    """The batch layer's rows of `day` (only those of `buckets` when given): staging events and
    transactions (deduplicated, tier as of event time), the `user_sessions` mart, RAW dead
    letters (with their raw bytes) of the day and its neighbours."""
    d = f"DATE '{day.isoformat()}'"
    sources = _batch_sources(day)
    only = (
        ""
        if buckets is None
        else f" AND {buckets.warehouse_filter('session_id', _engine(warehouse))}"
    )
    try:
        events = warehouse.query_arrow(
            "SELECT event_id, event_type, user_tier, session_id "  # noqa: S608
            f"FROM {sources['events'][:-1]}{only})"
        )
        transactions = warehouse.query_arrow(
            "SELECT transaction_id, status, user_tier, total_amount "  # noqa: S608
            f"FROM {sources['transactions'][:-1]}{only})"
        )
        sessions = warehouse.query_arrow(
            f"SELECT session_id, user_tier, {', '.join(FUNNEL_COUNTS)} "  # noqa: S608
            f"FROM {sources['sessions'][:-1]}{only})"
        )
        values = _values({t: warehouse.query_arrow(sql) for t, sql in _totals_sql(sources).items()})
        # the neighbouring days' too: a speed dead letter of another batch day is not D's
        near = (
            f"batch_day BETWEEN DATE '{(day - timedelta(days=1)).isoformat()}' "
            f"AND DATE '{(day + timedelta(days=NEIGHBOUR_DAYS)).isoformat()}'"
        )
        dead_letters = warehouse.query_arrow(
            "SELECT source_topic, source_partition, source_offset, reason, raw, batch_day "  # noqa: S608
            f"FROM raw.dead_letters WHERE {near}"
        )
        loaded = warehouse.query_arrow(
            "SELECT "  # noqa: S608
            + " + ".join(
                f"(SELECT count(*) FROM raw.{table} WHERE batch_day = {d})"  # noqa: S608
                for table in ("user_events", "transactions", "dead_letters")
            )
            + " AS n"
        )
    except Problem:
        raise
    except Exception as exc:  # the driver's own error types differ per warehouse
        raise _unreadable_batch(warehouse, exc) from None
    return LayerRows(
        events,
        transactions,
        sessions,
        _dead_letters(dead_letters),
        values,
        loaded=bool(loaded.column("n")[0].as_py()),
    ).canonical()


def _unreadable_batch(warehouse: Warehouse, exc: Exception) -> Problem:
    return Problem(
        f"cannot read the batch layer's tables in {warehouse.location}: {exc}",
        hint="run `lambdapipe batch run --date D` first (it loads RAW and builds the marts)",
    )


def _engine(warehouse: Warehouse) -> Engine:
    return "snowflake" if warehouse.dialect == "snowflake" else "duckdb"


def read_day(
    store: ServingStore,
    warehouse: Warehouse,
    day: date,
    seconds: dict[str, float] | None = None,
) -> tuple[LayerRows, LayerRows]:
    """Both layers' rows of `day` that may differ: each engine's digests per bucket first,
    then the rows of the buckets whose digests differ or that hold a dead letter's session
    (`digests`). Each layer's wall seconds go into `seconds` (read_speed, read_batch)."""
    phases = seconds if seconds is not None else {}
    start, end = day_bounds(day)
    span = {"start": start, "end": end}
    began = perf_counter()
    try:
        speed_digests = {
            table: store.query_arrow(digest_sql("clickhouse", table, source, FUNNEL_COUNTS), span)
            for table, source in _speed_sources().items()
        }
        speed_dead = store.query_arrow(
            "SELECT raw FROM dead_letters_realtime "
            "WHERE dead_lettered_at >= {start:DateTime64(3, 'UTC')} - INTERVAL 1 DAY",
            span,
        )
    except StoreError as exc:
        raise _unreadable_speed(exc) from None
    middle = perf_counter()
    engine = _engine(warehouse)
    try:
        batch_digests = {
            table: warehouse.query_arrow(digest_sql(engine, table, source, FUNNEL_COUNTS))
            for table, source in _batch_sources(day).items()
        }
        batch_dead = warehouse.query_arrow(
            "SELECT raw FROM raw.dead_letters WHERE batch_day BETWEEN "  # noqa: S608
            f"DATE '{(day - timedelta(days=1)).isoformat()}' "
            f"AND DATE '{(day + timedelta(days=NEIGHBOUR_DAYS)).isoformat()}'"
        )
    except Exception as exc:  # the driver's own error types differ per warehouse
        raise _unreadable_batch(warehouse, exc) from None
    buckets = differing(speed_digests, batch_digests, _dead_letter_buckets(speed_dead, batch_dead))
    after_digests = perf_counter()
    speed = speed_rows(store, day, buckets)
    after_speed = perf_counter()
    batch = batch_rows(warehouse, day, buckets)
    done = perf_counter()
    phases["read_speed"] = round(middle - began + after_speed - after_digests, 3)
    phases["read_batch"] = round(after_digests - middle + done - after_speed, 3)
    return speed, batch


def _dead_letter_buckets(*raws: pa.Table) -> pa.Array:
    """The buckets of the session ids that dead letters' raw bytes name."""
    import duckdb

    con = duckdb.connect()
    try:
        out = []
        for raw in raws:
            column = raw.column("raw")
            if not pa.types.is_binary(column.type):
                column = column.cast(pa.binary())
            con.register("dead", pa.table({"raw": column}))
            ids = con.sql(
                "SELECT try(json_extract_string(decode(raw), '$.session_id')) AS session_id "
                "FROM dead"
            ).to_arrow_table()
            con.unregister("dead")
            con.register("ids", pa.table({"session_id": canonical_ids(ids.column("session_id"))}))
            found = con.sql(
                f"SELECT {bucket_key('session_id', 'duckdb')} AS bucket FROM ids "  # noqa: S608
                "WHERE session_id IS NOT NULL"
            ).to_arrow_table()
            con.unregister("ids")
            out.append(found.column("bucket").cast(pa.string()))
        return pa.concat_arrays([c.combine_chunks() for c in out])
    finally:
        con.close()


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
