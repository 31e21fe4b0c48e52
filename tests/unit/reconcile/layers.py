"""Hand-made rows of one day in both layers, written into the real engines: the serving store
(chdb, the speed layer's realtime tables) and a DuckDB warehouse (RAW through `load_raw`, the
staging views over it and a `user_sessions` mart table)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import orjson
import pyarrow as pa

from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.warehouse.duckdb import DuckDBWarehouse
from lambdapipe.warehouse.raw import arrow_schema

# two days ago: the store's realtime tables drop rows older than their retention at insert
DAY = datetime.now(UTC).date() - timedelta(days=2)
NOON = datetime.combine(DAY, time(12), UTC)
# an event time well past the day's end plus the speed lateness: the speed layer is complete
PAST_THE_DAY = NOON + timedelta(days=1)
STEP_COUNTS = {
    "page_view": "page_views",
    "product_view": "product_views",
    "add_to_cart": "add_to_carts",
    "checkout_start": "checkout_starts",
    "purchase": "purchases",
}
_ids = count(1)


def new_id() -> str:
    return str(uuid.uuid4())


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class TwoLayers:
    """Rows of DAY as each layer holds them; the methods add one unit to either or both."""

    speed_events: list[dict[str, Any]] = field(default_factory=list)
    batch_events: list[dict[str, Any]] = field(default_factory=list)
    speed_transactions: list[dict[str, Any]] = field(default_factory=list)
    batch_transactions: list[dict[str, Any]] = field(default_factory=list)
    speed_sessions: list[dict[str, Any]] = field(default_factory=list)
    batch_sessions: list[dict[str, Any]] = field(default_factory=list)
    speed_dead_letters: list[dict[str, Any]] = field(default_factory=list)
    batch_dead_letters: list[dict[str, Any]] = field(default_factory=list)
    newest: datetime = PAST_THE_DAY

    def event(
        self,
        kind: str = "page_view",
        tier: str = "bronze",
        *,
        speed_tier: str | None = None,
        session_id: str | None = None,
        copies: int = 1,
        batch: bool = True,
        at: datetime = NOON,
    ) -> dict[str, Any]:
        """One event: `copies` accepted by speed (tier `speed_tier`), one in batch."""
        row = {
            "event_id": new_id(),
            "user_id": new_id(),
            "session_id": session_id or new_id(),
            "event_type": kind,
            "timestamp": at,
            "user_tier": tier,
        }
        self.speed_events += [{**row, "user_tier": speed_tier or tier}] * copies
        if batch:
            self.batch_events.append(row)
        return row

    def session(
        self,
        session_id: str,
        tier: str = "bronze",
        steps: tuple[str, ...] = ("page_view",),
        *,
        speed_tier: str | None = None,
        speed: bool = True,
        batch: bool = True,
    ) -> None:
        """One session of DAY with an event of each of `steps`."""
        row = {
            "session_id": session_id,
            "user_tier": tier,
            **{column: int(step in steps) for step, column in STEP_COUNTS.items()},
        }
        if speed:
            self.speed_sessions.append({**row, "user_tier": speed_tier or tier})
        if batch:
            self.batch_sessions.append(row)

    def transaction(
        self,
        amount: str,
        status: str = "completed",
        tier: str = "bronze",
        *,
        speed_tier: str | None = None,
        speed: bool = True,
        batch: bool = True,
    ) -> dict[str, Any]:
        row = {
            "transaction_id": new_id(),
            "status": status,
            "user_tier": tier,
            "total_amount": Decimal(amount),
            "timestamp": NOON,
        }
        if speed:
            self.speed_transactions.append({**row, "user_tier": speed_tier or tier})
        if batch:
            self.batch_transactions.append(row)
        return row

    def dead_letter(
        self,
        record: dict[str, Any] | bytes,
        *,
        speed_reason: str | None = None,
        batch_reason: str | None = None,
        dead_lettered_at: datetime = NOON,
        batch_day: date = DAY,
    ) -> None:
        """One Kafka record dead-lettered by either layer or both (its raw bytes: `record`)."""
        raw = record if isinstance(record, bytes) else orjson.dumps(record, default=_text)
        coordinates = {"source_topic": "events", "source_partition": 0, "source_offset": next(_ids)}
        if speed_reason:
            self.speed_dead_letters.append(
                {**coordinates, "reason": speed_reason, "raw": raw,
                 "dead_lettered_at": dead_lettered_at}
            )  # fmt: skip
        if batch_reason:
            self.batch_dead_letters.append(
                {**coordinates, "reason": batch_reason, "raw": raw, "day": batch_day}
            )

    def write(
        self, store: EmbeddedStore, warehouse: DuckDBWarehouse, *, batch: bool = True
    ) -> None:
        """Into the store (and, with `batch`, the warehouse's RAW, staging and marts)."""
        # the newest event time the speed layer has seen (in the batch too when it is of DAY)
        watermark = {
            "event_id": new_id(),
            "user_id": new_id(),
            "session_id": new_id(),
            "event_type": "login",
            "timestamp": self.newest,
            "user_tier": "bronze",
        }
        if self.newest.date() == DAY:
            self.batch_events.append(watermark)
        speed = {
            "user_events_realtime": _table([*self.speed_events, watermark], _EVENT_DEFAULTS),
            "transactions_realtime": _table(self.speed_transactions, _TX_DEFAULTS),
            "user_sessions_realtime": _table(self.speed_sessions, _SESSION_DEFAULTS),
            "dead_letters_realtime": _table(self.speed_dead_letters, {"detail": ""}),
        }
        for name, rows in speed.items():
            if rows.num_rows:
                store.insert_arrow(name, rows, None)
        create_batch_views(warehouse)
        if not batch:
            return
        raw = {
            "user_events": (self.batch_events, _BATCH_EVENT_DEFAULTS),
            "transactions": (self.batch_transactions, _TX_DEFAULTS),
        }
        for name, (rows, defaults) in raw.items():
            warehouse.load_raw(name, _table(rows, defaults, name), "b1", None, DAY)
        days = {DAY} | {r["day"] for r in self.batch_dead_letters}
        for day in sorted(days):
            rows = [
                {k: v for k, v in r.items() if k != "day"}
                for r in self.batch_dead_letters
                if r["day"] == day
            ]
            defaults = {"kafka_timestamp": NOON, "detail": ""}
            warehouse.load_raw(
                "dead_letters", _table(rows, defaults, "dead_letters"), "b1", None, day
            )
        sessions = _table(self.batch_sessions, {"session_date": DAY})
        warehouse.conn.register("sessions_rows", sessions if sessions.num_rows else _no_sessions())
        warehouse.execute("INSERT INTO marts.user_sessions BY NAME SELECT * FROM sessions_rows")


_EVENT_DEFAULTS: dict[str, Any] = {
    "device_type": "desktop",
    "browser": "chrome",
    "ip_address": "10.0.0.1",
    "page_url": "https://shop.example/",
}
_BATCH_EVENT_DEFAULTS: dict[str, Any] = {
    **_EVENT_DEFAULTS,
    "session_key": "s/0",
    "session_start": NOON,
}
_SESSION_DEFAULTS: dict[str, Any] = {
    "user_id": new_id(),
    "session_start": NOON,
    "session_end": NOON,
}
_TX_DEFAULTS: dict[str, Any] = {
    "user_id": "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d",
    "session_id": "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6e",
    "product_id": "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6f",
    "quantity": 1,
    "unit_price": Decimal("1.00"),
    "discount_amount": Decimal("0.00"),
    "tax_amount": Decimal("0.00"),
    "currency": "USD",
    "payment_method": "paypal",
}


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return stamp(value)
    raise TypeError(type(value))


def _table(rows: list[dict[str, Any]], defaults: dict[str, Any], raw: str = "") -> pa.Table:
    if not rows:
        return arrow_schema(raw).empty_table() if raw else pa.table({})
    return pa.Table.from_pylist([{**defaults, **row} for row in rows])


def _no_sessions() -> pa.Table:
    return pa.table(
        {"session_id": pa.array([], pa.string()), "user_tier": pa.array([], pa.string()),
         "session_date": pa.array([], pa.date32())}
        | {c: pa.array([], pa.int64()) for c in STEP_COUNTS.values()}
    )  # fmt: skip


def create_batch_views(warehouse: DuckDBWarehouse) -> None:
    """What dbt would build, reduced to what reconcile reads: staging views over RAW and the
    `user_sessions` mart's columns."""
    counts = ", ".join(f"{c} BIGINT" for c in STEP_COUNTS.values())
    for statement in (
        "CREATE SCHEMA IF NOT EXISTS staging",
        "CREATE SCHEMA IF NOT EXISTS marts",
        "CREATE OR REPLACE VIEW staging.stg_shop__events AS SELECT * FROM raw.user_events",
        "CREATE OR REPLACE VIEW staging.stg_shop__transactions AS SELECT * FROM raw.transactions",
        "CREATE TABLE IF NOT EXISTS marts.user_sessions (session_id VARCHAR, user_tier VARCHAR, "
        f"session_date DATE, {counts})",
    ):
        warehouse.execute(statement)
