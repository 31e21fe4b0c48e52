"""Where generated records go: a file (optionally zstd), stdout, or Kafka.

File sinks write events to PATH and transactions beside it (`transactions_path`). A file sink
only ever receives whole windows in a fixed order, which is what makes its bytes reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any, Final, Protocol

import zstandard

from lambdapipe.generator.journeys import Chunk

COMPRESSIONS: Final = ("none", "snappy", "lz4", "zstd")


def transactions_path(path: Path) -> Path:
    """The transactions file beside an events file: `o.jsonl.zst` -> `o.transactions.jsonl.zst`."""
    stem, _, suffixes = path.name.partition(".")
    return path.with_name(f"{stem}.transactions.{suffixes}" if suffixes else f"{stem}.transactions")


def joined(lines: list[bytes]) -> bytes:
    """Newline-terminated JSON lines as one blob."""
    return b"\n".join(lines) + b"\n" if lines else b""


class Sink(Protocol):
    """A destination for generated records."""

    bytes_written: int
    delivery_errors: int

    def write(self, chunk: Chunk) -> None:
        """Send one window of records."""

    def close(self) -> None:
        """Flush and release; after this the counters are final."""


class BlobSink:
    """Newline-delimited JSON into binary streams (a file, optionally zstd, or stdout)."""

    def __init__(self, events: IO[bytes], transactions: IO[bytes], owned: list[Any]) -> None:
        self._events, self._transactions, self._owned = events, transactions, owned
        self.bytes_written = 0
        self.delivery_errors = 0

    def write(self, chunk: Chunk) -> None:
        """Send one window of records."""
        self.write_blobs(joined(chunk.events), joined(chunk.transactions))

    def write_blobs(self, events: bytes, transactions: bytes) -> None:
        """Append already joined lines (what worker processes send)."""
        self._events.write(events)
        self._transactions.write(transactions)
        self.bytes_written += len(events) + len(transactions)

    def close(self) -> None:
        """Flush and close the streams this sink opened."""
        self._events.flush()
        self._transactions.flush()
        for stream in self._owned:
            stream.close()


def file_sink(path: Path) -> BlobSink:
    """Events to `path`, transactions beside it; zstd-compressed when the name ends in .zst."""
    path.parent.mkdir(parents=True, exist_ok=True)
    owned: list[Any] = []
    streams: list[IO[bytes]] = []
    for target in (path, transactions_path(path)):
        raw = target.open("wb")
        owned.append(raw)
        if target.suffix == ".zst":
            writer = zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
            owned.insert(0, writer)
            streams.append(writer)
        else:
            streams.append(raw)
    return BlobSink(streams[0], streams[1], owned)


def stdout_sink() -> BlobSink:
    """Events and transactions interleaved by window on stdout."""
    return BlobSink(sys.stdout.buffer, sys.stdout.buffer, [])


class KafkaSink:
    """Events and transactions to their topics, keyed by user_id, acks=all and idempotent."""

    def __init__(
        self,
        bootstrap: str,
        events_topic: str,
        transactions_topic: str,
        compression: str = "lz4",
        extra: dict[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Producer

        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": compression,
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 500_000,
                "queue.buffering.max.kbytes": 512 * 1024,
                **(extra or {}),
            }
        )
        self._events_topic, self._transactions_topic = events_topic, transactions_topic
        self.bytes_written = 0
        self.delivery_errors = 0
        self.delivered = 0

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.delivery_errors += 1

    def write(self, chunk: Chunk) -> None:
        """Queue one window; blocks while the producer's queue is full."""
        produce, poll, callback = self._producer.produce, self._producer.poll, self._on_delivery
        for topic, values, keys in (
            (self._events_topic, chunk.events, chunk.event_keys),
            (self._transactions_topic, chunk.transactions, chunk.transaction_keys),
        ):
            for value, key in zip(values, keys, strict=True):
                while True:
                    try:
                        produce(topic, value, key, on_delivery=callback)
                        break
                    except BufferError:
                        poll(0.05)
                self.bytes_written += len(value)
        poll(0)

    def close(self, timeout_s: float = 60.0) -> None:
        """Wait for every delivery report; records still undelivered count as errors."""
        self.delivery_errors += self._producer.flush(timeout_s)
