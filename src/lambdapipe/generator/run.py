"""Orchestration: plan the run, split it into shards, run them on K workers, merge in order.

Worker model: the stream is always cut into SHARDS independent shards (users `i % SHARDS`, each
shard with its own RNG and clock), whatever the number of workers. A shard's bytes depend only
on the seed and the arguments. Shards emit fixed-size windows; the output is window 0 of shard
0..7, then window 1 of shard 0..7, and so on. Worker k runs shards k, k+K, ..., and the parent
writes their windows in that fixed order, so file output is byte-identical for any K. Kafka sinks
are owned by the workers themselves (only per-key order matters there).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from lambdapipe.generator import metrics
from lambdapipe.generator.clock import parse_duration, parse_time
from lambdapipe.generator.faults import FaultSpec
from lambdapipe.generator.journeys import Chunk, ShardStream, StreamConfig
from lambdapipe.generator.sinks import BlobSink, KafkaSink, Sink, file_sink, joined, stdout_sink
from lambdapipe.generator.truth import EVENT_TYPES, Truth, merged, write_truth

SHARDS: Final = 8
WINDOW: Final = 2048
MIN_WINDOW: Final = 16
MAX_WINDOW_SPAN_US: Final = 10_000_000
PACED_WINDOW_SPAN_US: Final = 100_000
DEFAULT_STEP_US: Final = 1_000.0


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One generator run, fully resolved (see `plan`)."""

    seed: int
    events: int
    start_us: int
    step_us: float
    users: int
    products: int
    workers: int
    sink: str
    faults: FaultSpec = field(default_factory=FaultSpec)
    compression: str = "lz4"
    paced: bool = False
    truth_path: Path | None = None
    kafka: dict[str, str] = field(default_factory=dict)
    run: int = 0  # the same population's n-th run: other visits, other event ids
    watch_share: float = 0.0  # users whose every event the truth records (tier churn)


@dataclass(slots=True)
class Summary:
    """What a run did, for the final table and the benchmark."""

    valid_events: int = 0
    records: int = 0
    transactions: int = 0
    bytes_written: int = 0
    delivery_errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of this process only: the per-core cost when workers == 1
    truth: Truth = field(default_factory=Truth)

    @property
    def rate(self) -> float:
        """Valid events per second of wall time."""
        return self.valid_events / self.seconds if self.seconds else 0.0


def plan(
    *,
    rate: float,
    duration: str | None,
    events: int | None,
    seed: int,
    sink: str,
    start: str | None,
    workers: int = 1,
    users: int = 10_000,
    products: int = 1_000,
    faults: str = "",
    compression: str = "lz4",
    truth: Path | None = None,
    watch_share: float = 0.0,
) -> RunConfig:
    """Resolve CLI arguments into a RunConfig.

    Event time advances 1/rate per event when pacing (event time follows the wall clock); with
    rate 0 it spreads `events` over `duration` when both are given, else 1 ms per event.
    `watch_share`: the share of users (`population.watched`) whose every event the truth
    records, so that it can follow their tiers through `dims churn --watch-share`.
    """
    if not 0 <= watch_share <= 1:
        raise ValueError(f"the watched share {watch_share} is not between 0 and 1")
    duration_us = parse_duration(duration) if duration else None
    if rate > 0:
        step_us = 1e6 / rate
    elif duration_us and events:
        step_us = duration_us / events
    else:
        step_us = DEFAULT_STEP_US
    if events is None:
        if duration_us is None:
            raise ValueError("give --events or --duration")
        events = int(duration_us / step_us)
    start_us = parse_time(start) if start else time.time_ns() // 1_000
    return RunConfig(
        seed=seed,
        events=events,
        start_us=start_us,
        step_us=step_us,
        users=users,
        products=products,
        workers=max(1, min(workers, SHARDS)),
        sink=sink,
        faults=FaultSpec.parse(faults) if faults else FaultSpec(),
        compression=compression,
        paced=rate > 0,
        truth_path=truth,
        watch_share=watch_share,
    )


def stream_configs(config: RunConfig) -> list[StreamConfig]:
    """The SHARDS stream configurations of a run."""
    # A window's event-time span (at most 10 s, or 16 events) bounds how far event time steps
    # back between shards in the output; paced runs use ~100 ms windows so records leave soon
    # after their event time.
    shard_step = config.step_us * SHARDS
    if config.paced:
        window = max(1, min(WINDOW, int(PACED_WINDOW_SPAN_US / shard_step)))
    else:
        window = max(MIN_WINDOW, min(WINDOW, int(MAX_WINDOW_SPAN_US / shard_step)))
    return [
        StreamConfig(
            seed=config.seed,
            shard=shard,
            shards=SHARDS,
            events=config.events,
            start_us=config.start_us,
            step_us=config.step_us,
            users=config.users,
            products=config.products,
            window=window,
            faults=config.faults,
            paced=config.paced,
            run=config.run,
            watch_share=config.watch_share,
        )
        for shard in range(SHARDS)
    ]


def open_sink(config: RunConfig) -> Sink:
    """The sink named by `config.sink`: `kafka`, `stdout` or `file:PATH[.zst]`."""
    if config.sink == "kafka":
        return KafkaSink(
            config.kafka["bootstrap"],
            config.kafka["events_topic"],
            config.kafka["transactions_topic"],
            config.compression,
        )
    if config.sink == "stdout":
        return stdout_sink()
    if config.sink.startswith("file:"):
        return file_sink(Path(config.sink[5:]))
    raise ValueError(f"unknown sink {config.sink!r}: use kafka, stdout or file:PATH")


def _account(summary: Summary, chunk: Chunk, records: int, transactions: int) -> None:
    summary.valid_events += chunk.valid_events
    summary.records += records
    summary.transactions += transactions
    for name, n in zip(EVENT_TYPES, chunk.type_counts, strict=True):
        if n:
            metrics.EVENTS.labels(name).inc(n)
    metrics.RECORDS.labels("events").inc(records)
    metrics.RECORDS.labels("transactions").inc(transactions)


def run(config: RunConfig, progress: Callable[[int], None] = lambda n: None) -> Summary:
    """Generate everything `config` asks for; `progress` gets valid events per window."""
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = Summary()
    if config.workers == 1:
        _run_inline(config, summary, progress)
    else:
        _run_workers(config, summary, progress)
    summary.seconds = time.perf_counter() - started
    summary.cpu_seconds = time.process_time() - cpu_started
    metrics.BYTES.inc(summary.bytes_written)
    metrics.DELIVERY_ERRORS.inc(summary.delivery_errors)
    if config.truth_path is not None:
        write_truth(summary.truth, config.truth_path)
    return summary


def _run_inline(config: RunConfig, summary: Summary, progress: Callable[[int], None]) -> None:
    streams = [ShardStream(c) for c in stream_configs(config)]
    sink = open_sink(config)
    active = list(streams)
    while active:
        for stream in active:
            chunk = stream.window()
            sink.write(chunk)
            _account(summary, chunk, len(chunk.events), len(chunk.transactions))
            progress(chunk.valid_events)
        active = [s for s in active if s.remaining]
    sink.close()
    summary.bytes_written = sink.bytes_written
    summary.delivery_errors = sink.delivery_errors
    summary.truth = merged(s.truth for s in streams)


def _worker(config: RunConfig, shards: list[int], queue: Any) -> None:
    """Run `shards` of `config`; send each window (or its counts, for Kafka) to the parent."""
    configs = stream_configs(config)
    streams = [ShardStream(configs[s]) for s in shards]
    sink = open_sink(config) if config.sink == "kafka" else None
    active = list(streams)
    while active:
        for stream in active:
            chunk = stream.window()
            records, transactions = len(chunk.events), len(chunk.transactions)
            if sink is not None:
                sink.write(chunk)
                blobs = (b"", b"")
            else:
                blobs = (joined(chunk.events), joined(chunk.transactions))
            light = replace(chunk, events=[], event_keys=[], transactions=[], transaction_keys=[])
            queue.put((light, records, transactions, blobs))
        active = [s for s in active if s.remaining]
    errors = bytes_written = 0
    if sink is not None:
        sink.close()
        errors, bytes_written = sink.delivery_errors, sink.bytes_written
    queue.put(([s.truth for s in streams], errors, bytes_written))


def _receive(queue: Any, process: Any) -> Any:
    """The next message of a worker; raises instead of waiting forever if the worker died."""
    while True:
        try:
            return queue.get(timeout=1.0)
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(
                    f"generator worker exited with code {process.exitcode}"
                ) from None


def _run_workers(config: RunConfig, summary: Summary, progress: Callable[[int], None]) -> None:
    context = mp.get_context("spawn")
    k = config.workers
    queues = [context.Queue(maxsize=16) for _ in range(k)]
    owned = [list(range(w, SHARDS, k)) for w in range(k)]
    processes = [
        context.Process(target=_worker, args=(config, owned[w], queues[w]), daemon=True)
        for w in range(k)
    ]
    for process in processes:
        process.start()
    sink = open_sink(config) if config.sink != "kafka" else None
    # Each worker serves its shards round-robin, so reading in shard order matches its sends.
    active = list(range(SHARDS))
    while active:
        still = []
        for shard in active:
            chunk, records, transactions, blobs = _receive(queues[shard % k], processes[shard % k])
            if isinstance(sink, BlobSink):
                sink.write_blobs(*blobs)
            _account(summary, chunk, records, transactions)
            progress(chunk.valid_events)
            if not chunk.done:
                still.append(shard)
        active = still
    truths: list[Truth | None] = [None] * SHARDS
    for w in range(k):
        shard_truths, errors, bytes_written = _receive(queues[w], processes[w])
        for shard, truth in zip(owned[w], shard_truths, strict=True):
            truths[shard] = truth
        summary.delivery_errors += errors
        summary.bytes_written += bytes_written
    for process in processes:
        process.join()
    if sink is not None:
        sink.close()
        summary.bytes_written += sink.bytes_written
    summary.truth = merged(t for t in truths if t is not None)
