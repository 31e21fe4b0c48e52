"""Prometheus metrics of the speed layer."""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

FRESHNESS_BUCKETS: Final = (0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60, 120, 300, 600)


class SpeedMetrics:
    """Counters and gauges of the running job (one registry, so tests can make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.input_rate = Gauge(
            "lambdapipe_speed_input_rows_per_second", "Kafka records/s read", ["query"], registry=r
        )
        self.processing_rate = Gauge(
            "lambdapipe_speed_processed_rows_per_second",
            "records/s processed",
            ["query"],
            registry=r,
        )
        self.batch_duration = Histogram(
            "lambdapipe_speed_batch_duration_seconds",
            "micro-batch duration",
            ["query"],
            buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 60),
            registry=r,
        )
        self.consumed = Counter(
            "lambdapipe_speed_consumed_records_total", "records read", ["query"], registry=r
        )
        self.rows = Counter(
            "lambdapipe_speed_rows_written_total",
            "rows written to the store",
            ["table"],
            registry=r,
        )
        self.dead_letters = Counter(
            "lambdapipe_speed_dead_letters_total",
            "records dead-lettered",
            ["reason", "source_topic"],
            registry=r,
        )
        self.late = Counter(
            "lambdapipe_speed_late_events_total", "records dead-lettered as late", registry=r
        )
        self.duplicates = Counter(
            "lambdapipe_speed_duplicates_dropped_total",
            "repeated records dropped by deduplication",
            registry=r,
        )
        self.dropped_by_watermark = Counter(
            "lambdapipe_speed_rows_dropped_by_watermark_total",
            "rows a stateful operator dropped as late (must stay 0)",
            ["query"],
            registry=r,
        )
        self.state_rows = Gauge(
            "lambdapipe_speed_state_rows", "rows in the state store", ["query"], registry=r
        )
        self.freshness = Histogram(
            "lambdapipe_speed_freshness_seconds",
            "event time to written in the store",
            ["table"],
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.store_retries = Counter(
            "lambdapipe_speed_store_retries_total", "failed insert attempts", ["table"], registry=r
        )
        self.restarts = Counter(
            "lambdapipe_speed_query_restarts_total", "query restarts", registry=r
        )
        self.conservation_errors = Counter(
            "lambdapipe_speed_conservation_errors_total",
            "batches where consumed != accepted + dead letters + duplicates",
            registry=r,
        )

    def observe_progress(self, query: str, progress: dict[str, Any]) -> None:
        """Record one StreamingQueryProgress (as a dict)."""
        self.input_rate.labels(query).set(progress.get("inputRowsPerSecond") or 0.0)
        self.processing_rate.labels(query).set(progress.get("processedRowsPerSecond") or 0.0)
        self.consumed.labels(query).inc(progress.get("numInputRows") or 0)
        took = (progress.get("durationMs") or {}).get("triggerExecution")
        if took is not None:
            self.batch_duration.labels(query).observe(took / 1000)
        operators = progress.get("stateOperators") or []
        self.state_rows.labels(query).set(sum(op.get("numRowsTotal", 0) for op in operators))
        dropped = sum(op.get("numRowsDroppedByWatermark", 0) for op in operators)
        if dropped:
            self.dropped_by_watermark.labels(query).inc(dropped)

    def serve(self, port: int) -> None:
        """Expose /metrics on `port`."""
        start_http_server(port, registry=self.registry)
