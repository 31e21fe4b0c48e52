"""The edges without Spark: sink retries and tokens, CDC state, metrics, CLI parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from lambdapipe.serving.store import Params, ServingStore, StoreError
from lambdapipe.speed.cli import _interval
from lambdapipe.speed.metrics import SpeedMetrics
from lambdapipe.speed.sink import ServingSink, StoreUnavailable, insert_token, to_store_types


class FlakyStore(ServingStore):
    """A store that refuses the first `failures` inserts, then keeps one batch per token."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.batches: dict[str, pa.Table] = {}

    def execute(self, sql: str, params: Params | None = None) -> None:
        raise NotImplementedError

    def query_arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        raise NotImplementedError

    def query_bytes(self, sql: str, fmt: str, bound: dict[str, str]) -> bytes:
        raise NotImplementedError

    def query_readonly(self, sql: str, params: Params | None = None) -> pa.Table:
        raise NotImplementedError

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> int:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise StoreError("ClickHouse at http://127.0.0.1:1/ unreachable: refused")
        assert dedup_token is not None
        self.batches.setdefault(dedup_token, data)
        return int(data.num_rows)

    def close(self) -> None:
        pass


def _table() -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([datetime(2026, 3, 2, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            "amount": pa.array([Decimal("1.50")], pa.decimal128(10, 2)),
        }
    )


def test_token_is_query_batch_table() -> None:
    assert insert_token("4f1c", 1842, "user_events_realtime") == "4f1c:1842:user_events_realtime"


def test_store_types_are_milliseconds() -> None:
    converted = to_store_types(_table())
    assert converted.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert converted.schema.field("amount").type == pa.decimal128(10, 2)


def test_sink_retries_with_backoff_then_writes_once() -> None:
    store, sleeps = FlakyStore(failures=3), []
    sink = ServingSink(store, retry_s=60, sleep=sleeps.append)
    assert sink.write("t", _table(), "q:1:t") == 1
    assert sink.write("t", _table(), "q:1:t") == 1  # a replay: the store keeps one
    assert sleeps == [0.25, 0.5, 1.0]
    assert list(store.batches) == ["q:1:t"]


def test_sink_gives_up_after_its_budget() -> None:
    sink = ServingSink(FlakyStore(failures=1_000), retry_s=3, sleep=lambda s: None)
    with pytest.raises(StoreUnavailable):
        sink.write("t", _table(), "q:2:t")


def test_sink_skips_empty_batches() -> None:
    store = FlakyStore(failures=0)
    assert ServingSink(store, 1).write("t", _table().slice(0, 0), "q:3:t") == 0
    assert store.attempts == 0


def test_metrics_read_streaming_progress() -> None:
    metrics = SpeedMetrics()
    metrics.observe_progress(
        "records",
        {
            "batchId": 3,
            "numInputRows": 120,
            "inputRowsPerSecond": 60.0,
            "processedRowsPerSecond": 80.0,
            "durationMs": {"triggerExecution": 1500},
            "stateOperators": [{"numRowsTotal": 42, "numRowsDroppedByWatermark": 0}],
        },
    )
    registry = metrics.registry
    value = registry.get_sample_value
    assert value("lambdapipe_speed_consumed_records_total", {"query": "records"}) == 120
    assert value("lambdapipe_speed_state_rows", {"query": "records"}) == 42
    assert value("lambdapipe_speed_batch_duration_seconds_count", {"query": "records"}) == 1


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("2s", "2 seconds"),
        ("500ms", "500 milliseconds"),
        ("1m", "1 minutes"),
        ("3 seconds", "3 seconds"),
    ],
)
def test_trigger_interval_parsing(text: str, interval: str) -> None:
    assert _interval(text) == interval
