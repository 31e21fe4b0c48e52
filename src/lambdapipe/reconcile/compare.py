"""Speed vs batch (vs truth) for one day, and every difference attributed to a cause.

Pure: two `LayerRows` (and the truth's numbers) in, a `Reconciliation` out. The comparison runs
as set operations in an in-memory DuckDB over the Arrow tables (joins by event_id,
transaction_id, session_id and Kafka coordinates), never a Python loop over rows.

Each unit (an event, a transaction, a session id, a dead letter) that the two layers see
differently contributes `speed - batch` to the metrics it counts in, under the first cause its
evidence shows (docs/reconcile.md). A contribution no evidence explains keeps a cause starting
with `?`: it is the unexplained remainder, `diff - attributed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import duckdb
import pyarrow as pa

from lambdapipe.reconcile.ids import canonical_ids
from lambdapipe.reconcile.layers import FUNNEL_COUNTS, LayerRows, day_bounds
from lambdapipe.reconcile.truth import TruthMetrics

# The causes, in the order they are tried on a unit.
CAUSES: Final = (
    "late",  # dead-lettered `late` by the speed layer, counted by the batch layer
    "duplicate",  # accepted more than once by the speed layer (beyond its dedup watermark)
    "tier",  # tier at processing time (speed) != tier as of event time (batch)
    "speed_only_dead_letter",  # dead-lettered by the speed layer only (another reason)
    "batch_only_dead_letter",  # dead-lettered by the batch layer only
    "reason_differs",  # dead-lettered by both, with different reasons
    "speed_incomplete",  # the speed layer has not passed the day (or a session is still open)
    "batch_incomplete",  # the batch layer has not loaded the day
)
# What an unexplained contribution was (for the findings), as a sentence: `{units}` lists the
# units of each metric ("512 events, 31 transactions"), `{day}` is the day.
UNEXPLAINED: Final = {
    "?missing_in_batch": "missing data for {day} in the batch layer: {units} accepted by the "
    "speed layer, in neither the batch layer's rows nor its dead letters",
    "?missing_in_speed": "missing data for {day} in the speed layer: {units} in the batch "
    "layer, in neither the speed layer's rows nor its dead letters, though it has passed the day",
    "?differs": "{units} of {day} different in the two layers with no cause the data shows",
}
STEPS: Final = ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
# metric -> what one unit is, for the findings
UNITS: Final = {
    "events": "events",
    "transactions": "transactions",
    "sessions": "sessions",
    "dead_letters": "dead letters",
}


@dataclass(frozen=True)
class Thresholds:
    """How far a metric may be off before reconcile fails (counts, or money in currency units)."""

    max_unexplained: Decimal = Decimal(0)
    max_batch_vs_truth: Decimal = Decimal(0)


@dataclass
class Reconciliation:
    """The day's comparison: one row per (metric, key), the verdict and why."""

    day: date
    rows: list[dict[str, Any]]
    speed_complete: bool
    batch_loaded: bool
    findings: list[str] = field(default_factory=list)
    # units no cause explains, per metric and kind (keys of UNEXPLAINED)
    unexplained_units: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.findings)

    @property
    def status(self) -> str:
        """`failed`, `incomplete` (a layer has not finished the day) or `ok`."""
        if self.failed:
            return "failed"
        if not (self.speed_complete and self.batch_loaded):
            return "incomplete"
        return "ok"

    def attributed(self) -> dict[str, Decimal]:
        """The contributions of each cause over every metric (absolute values)."""
        return {c: sum((abs(r[c]) for r in self.rows), Decimal(0)) for c in CAUSES}


def reconcile(
    day: date,
    speed: LayerRows,
    batch: LayerRows,
    truth: TruthMetrics | None,
    *,
    lateness: timedelta,
    thresholds: Thresholds,
) -> Reconciliation:
    """Compare the two layers' rows of `day`, and the batch with the truth's numbers."""
    _, end = day_bounds(day)
    newest = speed.newest_event
    speed_complete = newest is not None and _utc(newest) >= end + lateness
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for side, rows in (("s", speed), ("b", batch)):
            tables = {
                "ev": rows.events,
                "tx": rows.transactions,
                "se": rows.sessions,
                "dl": _parsed_dead_letters(con, rows.dead_letters),
            }
            for name, table in tables.items():
                _load(con, f"{side}_{name}", table)
        con.register("truth", truth.values if truth is not None else _no_truth())
        known = truth.metrics if truth is not None else ()
        con.register("truth_of_metric", pa.table({"metric": pa.array(known, pa.string())}))
        flags = {
            "day": f"DATE '{day.isoformat()}'",
            "batch_loaded": "true" if batch.loaded else "false",
            "speed_complete": "true" if speed_complete else "false",
        }
        con.execute(_DEAD_LETTERS_OF_DAY.format(**flags))
        con.execute(
            "CREATE TEMP TABLE contributions AS "
            + " UNION ALL ".join(
                q.format(**flags) for q in (_EVENTS, _TRANSACTIONS, _SESSIONS, _DEAD_LETTERS)
            )
        )
        for side, rows in (("s", speed), ("b", batch)):
            con.register(f"{side}_values", rows.values)
        con.execute(
            "CREATE TEMP TABLE measured AS "
            + " UNION ALL ".join(
                f"SELECT metric, key, '{side}' AS side, value "  # noqa: S608
                f"FROM {side}_values UNION ALL {_dead_letter_values(side)}"
                for side in ("s", "b")
            )
        )
        rows = con.sql(_ASSEMBLE).to_arrow_table().to_pylist()
        evidence = con.sql(
            "SELECT metric, cause, sum(abs(delta)) AS n FROM contributions "  # noqa: S608
            f"WHERE cause LIKE '?%' AND metric IN ({', '.join(repr(m) for m in UNITS)}) "
            "GROUP BY metric, cause ORDER BY metric, cause"
        ).fetchall()
    finally:
        con.close()
    result = Reconciliation(day, rows, speed_complete, batch.loaded)
    for metric, cause, n in evidence:
        result.unexplained_units.setdefault(metric, {})[cause] = int(n)
    result.findings = _findings(result, thresholds, truth is not None)
    return result


# Id columns become DuckDB UUIDs (16 bytes): joins on them are several times faster than on text.
_UUID_COLUMNS: Final = frozenset({"event_id", "transaction_id", "session_id", "record_id"})


def _load(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """`table` as DuckDB temp table `name`, read from Arrow once, ids as UUIDs."""
    con.register("arrow_rows", table)
    columns = ", ".join(
        f"try_cast({c} AS UUID) AS {c}" if c in _UUID_COLUMNS else c for c in table.column_names
    )
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT {columns} FROM arrow_rows")  # noqa: S608
    con.unregister("arrow_rows")


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _no_truth() -> pa.Table:
    return pa.table(
        {"metric": pa.array([], pa.string()), "key": pa.array([], pa.string())}
        | {"value": pa.array([], pa.decimal128(38, 2))}
    )


def _parsed_dead_letters(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> pa.Table:
    """Dead letters with the record id, session id and event time read from their raw bytes
    (where the bytes are JSON that has them), ids through the one rule."""
    con.register("dead_letters_raw", rows)
    field = "try(json_extract_string(decode(raw), '$.{}'))"
    parsed = con.sql(
        "SELECT source_topic, source_partition, source_offset, reason, batch_day, "  # noqa: S608
        f"coalesce({field.format('event_id')}, {field.format('transaction_id')}) AS record_id, "
        f"{field.format('session_id')} AS session_id, "
        "CASE WHEN reason <> 'future_timestamp' "
        f"THEN CAST(try_cast({field.format('timestamp')} AS TIMESTAMPTZ) AS DATE) END "
        "AS event_day, CAST(dead_lettered_at AS DATE) AS dead_lettered_day "
        "FROM dead_letters_raw"
    ).to_arrow_table()
    con.unregister("dead_letters_raw")
    for name in ("record_id", "session_id"):
        i = parsed.schema.get_field_index(name)
        parsed = parsed.set_column(i, name, canonical_ids(parsed.column(name)))
    return parsed


# The dead letters of the day: a Kafka record the batch dead-lettered is of the batch's day
# in both layers; a speed dead letter the batch did not reject is D's when its event time is
# (else, with no readable time, when it was dead-lettered).
_DEAD_LETTERS_OF_DAY = """
CREATE TEMP TABLE dl AS
SELECT s.reason AS s_reason, b.reason AS b_reason,
       coalesce(b.record_id, s.record_id) AS record_id
FROM s_dl AS s FULL JOIN b_dl AS b
  ON s.source_topic = b.source_topic AND s.source_partition = b.source_partition
 AND s.source_offset = b.source_offset
WHERE coalesce(b.batch_day, s.event_day, s.dead_lettered_day) = {day}
"""

# Events: speed copies ranked so the copy matching the batch's tier comes first.
_EVENTS = """
(WITH ranked AS (
    SELECT s.event_id, s.event_type, s.user_tier, b.user_tier AS b_tier,
           b.event_id IS NOT NULL AS in_batch,
           row_number() OVER (
               PARTITION BY s.event_id
               ORDER BY (s.user_tier = coalesce(b.user_tier, '')) DESC, s.user_tier
           ) AS copy
    FROM s_ev AS s LEFT JOIN b_ev AS b ON s.event_id = b.event_id
), units AS (
    SELECT event_type, user_tier AS tier, 'duplicate' AS cause, 1 AS delta
    FROM ranked WHERE copy > 1
    UNION ALL
    SELECT event_type, user_tier, 'tier', 1 FROM ranked
    WHERE copy = 1 AND in_batch AND user_tier <> b_tier
    UNION ALL
    SELECT event_type, b_tier, 'tier', -1 FROM ranked
    WHERE copy = 1 AND in_batch AND user_tier <> b_tier
    UNION ALL
    SELECT event_type, user_tier,
           CASE WHEN event_id IN (SELECT record_id FROM b_dl) THEN 'batch_only_dead_letter'
                WHEN NOT {batch_loaded} THEN 'batch_incomplete'
                ELSE '?missing_in_batch' END, 1
    FROM ranked WHERE copy = 1 AND NOT in_batch
    UNION ALL
    SELECT event_type, user_tier,
           CASE WHEN event_id IN (SELECT record_id FROM s_dl WHERE reason = 'late') THEN 'late'
                WHEN event_id IN (SELECT record_id FROM s_dl) THEN 'speed_only_dead_letter'
                WHEN NOT {speed_complete} THEN 'speed_incomplete'
                ELSE '?missing_in_speed' END, -1
    FROM b_ev AS b WHERE NOT EXISTS (SELECT 1 FROM s_ev AS s WHERE s.event_id = b.event_id)
)
SELECT 'events' AS metric, event_type || '/' || tier AS key, cause,
       CAST(sum(delta) AS DECIMAL(38, 2)) AS delta
FROM units GROUP BY ALL)
"""

# Transactions, the same way; their money metrics follow from (status, tier, amount).
_TX_UNITS = """
ranked_tx AS (
    SELECT s.transaction_id, s.status, s.user_tier, s.total_amount, b.user_tier AS b_tier,
           b.transaction_id IS NOT NULL AS in_batch,
           row_number() OVER (
               PARTITION BY s.transaction_id
               ORDER BY (s.user_tier = coalesce(b.user_tier, '')) DESC, s.user_tier
           ) AS copy
    FROM s_tx AS s LEFT JOIN b_tx AS b ON s.transaction_id = b.transaction_id
), tx_units AS (
    SELECT status, user_tier AS tier, 'duplicate' AS cause, 1 AS n, total_amount AS amount
    FROM ranked_tx WHERE copy > 1
    UNION ALL
    SELECT status, user_tier, 'tier', 1, total_amount FROM ranked_tx
    WHERE copy = 1 AND in_batch AND user_tier <> b_tier
    UNION ALL
    SELECT status, b_tier, 'tier', -1, -total_amount FROM ranked_tx
    WHERE copy = 1 AND in_batch AND user_tier <> b_tier
    UNION ALL
    SELECT status, user_tier,
           CASE WHEN transaction_id IN (SELECT record_id FROM b_dl)
                THEN 'batch_only_dead_letter'
                WHEN NOT {batch_loaded} THEN 'batch_incomplete'
                ELSE '?missing_in_batch' END, 1, total_amount
    FROM ranked_tx WHERE copy = 1 AND NOT in_batch
    UNION ALL
    SELECT status, user_tier,
           CASE WHEN transaction_id IN (SELECT record_id FROM s_dl WHERE reason = 'late')
                THEN 'late'
                WHEN transaction_id IN (SELECT record_id FROM s_dl) THEN 'speed_only_dead_letter'
                WHEN NOT {speed_complete} THEN 'speed_incomplete'
                ELSE '?missing_in_speed' END, -1, -total_amount
    FROM b_tx AS b
    WHERE NOT EXISTS (SELECT 1 FROM s_tx AS s WHERE s.transaction_id = b.transaction_id)
)"""


def _transaction_metrics(units: str, extra: str) -> str:
    """The transaction metrics over `units` (status, tier, n, amount, then `extra` columns)."""
    money = (
        ("gross_bookings", "true"),
        ("revenue", "status = 'completed'"),
        ("refunds", "status = 'refunded'"),
    )
    parts = [
        f"SELECT 'transactions' AS metric, status || '/' || tier AS key{extra}, "  # noqa: S608
        f"CAST(sum(n) AS DECIMAL(38, 2)) AS delta FROM {units} GROUP BY ALL",
        f"SELECT 'transactions_by_tier', tier{extra}, CAST(sum(n) AS DECIMAL(38, 2)) "  # noqa: S608
        f"FROM {units} GROUP BY ALL",
        *(
            f"SELECT '{name}', tier{extra}, CAST(sum(amount) AS DECIMAL(38, 2)) "  # noqa: S608
            f"FROM {units} WHERE {condition} GROUP BY ALL"
            for name, condition in money
        ),
    ]
    return " UNION ALL ".join(parts)


_TRANSACTIONS = f"(WITH {_TX_UNITS} {_transaction_metrics('tx_units', ', cause')})"

_FLAGS = ", ".join(f"{c} > 0 AS f_{step}" for c, step in zip(FUNNEL_COUNTS, STEPS, strict=True))
_SHAPE = " || ".join(f"CAST(f_{step} AS INTEGER)" for step in STEPS)
# A session id's sessions, as (tier, funnel shape) and as funnel shapes alone, order-free.
_SIGNATURE = (
    f"SELECT session_id, list_sort(list(user_tier || ':' || {_SHAPE})) AS sig, "  # noqa: S608
    f"list_sort(list({_SHAPE})) AS shape FROM {{side}} GROUP BY session_id"
)

# Sessions by session id: a session id whose sessions (tier and funnel shape) differ between
# the layers contributes all its sessions, under the first cause its evidence shows.
_SESSIONS = f"""
(WITH s AS (SELECT session_id, user_tier, {_FLAGS} FROM s_se),
b AS (SELECT session_id, user_tier, {_FLAGS} FROM b_se),
sig_s AS (
    SELECT session_id, string_agg(user_tier || ':' || {_SHAPE}, ',' ORDER BY user_tier || ':' || {
    _SHAPE
}) AS sig,
           string_agg({_SHAPE}, ',' ORDER BY {_SHAPE}) AS shape
    FROM s GROUP BY session_id
), sig_b AS (
    SELECT session_id, string_agg(user_tier || ':' || {_SHAPE}, ',' ORDER BY user_tier || ':' || {
    _SHAPE
}) AS sig,
           string_agg({_SHAPE}, ',' ORDER BY {_SHAPE}) AS shape
    FROM b GROUP BY session_id
), differing AS (
    SELECT coalesce(s.session_id, b.session_id) AS session_id, s.sig IS NULL AS no_speed,
           b.sig IS NULL AS no_batch, s.shape IS NOT DISTINCT FROM b.shape AS same_shape
    FROM sig_s AS s FULL JOIN sig_b AS b ON s.session_id = b.session_id
    WHERE s.sig IS DISTINCT FROM b.sig
), caused AS (
    SELECT session_id,
           CASE WHEN session_id IN (SELECT session_id FROM s_dl WHERE reason = 'late') THEN 'late'
                WHEN no_speed AND session_id IN (SELECT session_id FROM s_ev)
                THEN 'speed_incomplete'
                WHEN no_speed AND NOT {{speed_complete}} THEN 'speed_incomplete'
                WHEN session_id IN (SELECT session_id FROM s_dl) THEN 'speed_only_dead_letter'
                WHEN session_id IN (SELECT session_id FROM b_dl) THEN 'batch_only_dead_letter'
                WHEN session_id IN (
                    SELECT session_id FROM s_ev GROUP BY event_id, session_id HAVING count(*) > 1
                ) THEN 'duplicate'
                WHEN same_shape THEN 'tier'
                WHEN NOT {{batch_loaded}} THEN 'batch_incomplete'
                WHEN no_batch THEN '?missing_in_batch'
                WHEN no_speed THEN '?missing_in_speed'
                ELSE '?differs' END AS cause
    FROM differing
), units AS (
    SELECT s.*, c.cause, 1 AS delta FROM s JOIN caused AS c USING (session_id)
    UNION ALL
    SELECT b.*, c.cause, -1 FROM b JOIN caused AS c USING (session_id)
)
SELECT 'sessions' AS metric, user_tier AS key, cause, CAST(sum(delta) AS DECIMAL(38, 2))
FROM units GROUP BY ALL
UNION ALL
SELECT 'funnel', 'sessions', cause, CAST(sum(delta) AS DECIMAL(38, 2)) FROM units GROUP BY ALL
{
    "".join(
        f" UNION ALL SELECT 'funnel', '{step}', cause, CAST(sum(delta) AS DECIMAL(38, 2)) "
        f"FROM units WHERE f_{step} GROUP BY ALL"
        for step in STEPS
    )
})
"""  # noqa: S608

_DEAD_LETTERS = """
(WITH batch_ids AS (
    SELECT event_id AS id FROM b_ev UNION ALL SELECT transaction_id FROM b_tx
), speed_ids AS (
    SELECT event_id AS id FROM s_ev UNION ALL SELECT transaction_id FROM s_tx
), units AS (
    SELECT s_reason AS reason,
           CASE WHEN record_id IN (SELECT id FROM batch_ids) AND s_reason = 'late' THEN 'late'
                WHEN record_id IN (SELECT id FROM batch_ids) THEN 'speed_only_dead_letter'
                WHEN NOT {batch_loaded} THEN 'batch_incomplete'
                ELSE '?missing_in_batch' END AS cause, 1 AS delta
    FROM dl WHERE b_reason IS NULL
    UNION ALL
    SELECT b_reason,
           CASE WHEN record_id IN (SELECT id FROM speed_ids) THEN 'batch_only_dead_letter'
                WHEN NOT {speed_complete} THEN 'speed_incomplete'
                ELSE '?missing_in_speed' END, -1
    FROM dl WHERE s_reason IS NULL
    UNION ALL
    SELECT s_reason, 'reason_differs', 1 FROM dl WHERE s_reason <> b_reason
    UNION ALL
    SELECT b_reason, 'reason_differs', -1 FROM dl WHERE s_reason <> b_reason
)
SELECT 'dead_letters' AS metric, reason AS key, cause, CAST(sum(delta) AS DECIMAL(38, 2))
FROM units GROUP BY ALL)
"""


def _dead_letter_values(side: str) -> str:
    """The dead letters of the day in one layer (`side`: s or b), by reason (the other
    metrics' values come counted by each layer's engine: `LayerRows.values`)."""
    return (
        f"SELECT 'dead_letters', {side}_reason, '{side}', CAST(count(*) AS DECIMAL(38, 2)) "  # noqa: S608
        f"FROM dl WHERE {side}_reason IS NOT NULL GROUP BY ALL"
    )


_BY_CAUSE = ", ".join(
    f"coalesce(sum(delta) FILTER (WHERE cause = '{c}'), 0) AS {c}" for c in CAUSES
)
_ASSEMBLE = f"""
WITH keys AS (
    SELECT metric, key FROM measured UNION SELECT metric, key FROM contributions
    UNION SELECT metric, key FROM truth
), values AS (
    SELECT metric, key,
           coalesce(sum(value) FILTER (WHERE side = 's'), 0) AS speed,
           coalesce(sum(value) FILTER (WHERE side = 'b'), 0) AS batch
    FROM measured GROUP BY metric, key
), causes AS (
    SELECT metric, key,
           {_BY_CAUSE},
           coalesce(sum(delta) FILTER (WHERE cause NOT LIKE '?%'), 0) AS attributed
    FROM contributions GROUP BY metric, key
)
SELECT k.metric, k.key,
       coalesce(v.speed, 0) AS speed, coalesce(v.batch, 0) AS batch,
       CASE WHEN k.metric IN (SELECT metric FROM truth_of_metric)
            THEN coalesce(t.value, 0) END AS truth,
       coalesce(v.speed, 0) - coalesce(v.batch, 0) AS diff,
       {", ".join(f"coalesce(c.{c}, 0) AS {c}" for c in CAUSES)},
       coalesce(v.speed, 0) - coalesce(v.batch, 0) - coalesce(c.attributed, 0) AS unexplained,
       CASE WHEN k.metric IN (SELECT metric FROM truth_of_metric)
            THEN coalesce(v.batch, 0) - coalesce(t.value, 0) END AS batch_vs_truth
FROM keys AS k
LEFT JOIN values AS v USING (metric, key)
LEFT JOIN causes AS c USING (metric, key)
LEFT JOIN truth AS t USING (metric, key)
ORDER BY k.metric, k.key
"""  # noqa: S608


def _findings(result: Reconciliation, thresholds: Thresholds, with_truth: bool) -> list[str]:
    """Why the day fails, in words with the numbers; empty when it passes."""
    out: list[str] = []
    off = [r for r in result.rows if abs(r["unexplained"]) > thresholds.max_unexplained]
    if off:
        total = sum((abs(r["unexplained"]) for r in off), Decimal(0))
        listed = "; ".join(
            f"{r['metric']} {r['key']}: speed {_n(r['speed'])}, batch {_n(r['batch'])}, "
            f"unexplained {_n(r['unexplained'])}"
            for r in off[:5]
        )
        out.append(
            f"unexplained speed-vs-batch difference on {result.day}: {len(off)} metric rows "
            f"over the threshold {thresholds.max_unexplained} (sum {_n(total)}): {listed}"
            + (" ..." if len(off) > 5 else "")
        )
        for kind, sentence in UNEXPLAINED.items():
            units = ", ".join(
                f"{result.unexplained_units[metric][kind]:,} {name}"
                for metric, name in UNITS.items()
                if result.unexplained_units.get(metric, {}).get(kind)
            )
            if units:
                out.append(sentence.format(day=result.day, units=units))
    if with_truth:
        wrong = [
            r
            for r in result.rows
            if r["batch_vs_truth"] is not None
            and abs(r["batch_vs_truth"]) > thresholds.max_batch_vs_truth
        ]
        if wrong:
            listed = "; ".join(
                f"{r['metric']} {r['key']}: batch {_n(r['batch'])}, truth {_n(r['truth'])}"
                for r in wrong[:5]
            )
            cause = (
                "the batch layer has not loaded the day"
                if not result.batch_loaded
                else "the batch layer is missing or has extra data for the day"
            )
            out.append(
                f"batch differs from the truth on {result.day} ({cause}): {len(wrong)} metric "
                f"rows over the threshold {thresholds.max_batch_vs_truth}: {listed}"
                + (" ..." if len(wrong) > 5 else "")
            )
    return out


def _n(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if value == value.to_integral_value() else str(value)
