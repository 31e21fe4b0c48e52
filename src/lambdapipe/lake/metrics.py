"""The archiver's Prometheus metrics: records and commits per table, the newest commit."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from lambdapipe.observability.targets import register_target
from lambdapipe.settings import Settings


class LakeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.records = Counter(
            "lambdapipe_lake_records",
            "Kafka records archived into a raw table",
            ["table"],
            registry=self.registry,
        )
        self.commits = Counter(
            "lambdapipe_lake_commits",
            "Iceberg commits (micro-batches with data) of a raw table",
            ["table"],
            registry=self.registry,
        )
        self.last_commit = Gauge(
            "lambdapipe_lake_last_commit_timestamp_seconds",
            "When the archiver last committed records to a raw table",
            ["table"],
            registry=self.registry,
        )
        self.restarts = Counter(
            "lambdapipe_lake_restarts", "Archiver query restarts", registry=self.registry
        )

    def committed(self, table: str, records: int) -> None:
        self.records.labels(table).inc(records)
        self.commits.labels(table).inc()
        self.last_commit.labels(table).set_to_current_time()

    def serve(self, settings: Settings, port: int) -> None:
        """Expose /metrics on `port` and register it with the local Prometheus."""
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
        register_target(settings, "lake", "127.0.0.1", port)
