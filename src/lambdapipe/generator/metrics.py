"""Prometheus metrics of the generator (the parent process counts for every worker)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, start_http_server

EVENTS: Final = Counter("lambdapipe_generator_events", "Valid events generated", ["event_type"])
RECORDS: Final = Counter(
    "lambdapipe_generator_records", "Records sent, faulty and duplicated ones included", ["topic"]
)
BYTES: Final = Counter("lambdapipe_generator_bytes", "Serialized bytes sent")
DELIVERY_ERRORS: Final = Counter(
    "lambdapipe_generator_delivery_errors", "Records the sink failed to deliver"
)


def serve(port: int) -> None:
    """Expose the metrics over HTTP on `port` (0: do nothing)."""
    if port:
        start_http_server(port)
