"""`lambdapipe demo`: set up, start, generate, watch live, summarise — and leave things tidy.

Steps: the local stack; the schemas registered; the dimensions loaded and captured (Debezium);
the serving process, the speed layer and the lake's archiver started; traffic generated with
dimension churn and a small share of faults while a live view shows produced and processed
rates, lag, dead letters and freshness; then the batch half (`demo/batch.py`: the lake caught
up, `batch run` and publication of the traffic's day(s), reconciliation against the truth) and a
one-screen summary of realtime vs batch vs truth. The stack is left running for exploration, or
stopped (`--stop`), never half-started: a failure or Ctrl-C stops what the demo started.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lambdapipe.contracts.subjects import register_all
from lambdapipe.demo.batch import BatchHalf, run_batch_half
from lambdapipe.demo.observe import Observer, Snapshot
from lambdapipe.demo.traffic import ChurnReport, run_traffic, stopped_by
from lambdapipe.errors import Problem
from lambdapipe.generator.run import Summary, plan
from lambdapipe.generator.run import run as generate
from lambdapipe.ingest import cdc
from lambdapipe.ingest.churn import ChurnResult, churn
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings

# a little of every kind of bad input, so the dead-letter queue has something to show; late
# events 3 min and long-distance duplicates 4 min behind their place, beyond the demo's
# lateness and its dedup state (docs/demo.md): the speed layer dead-letters them `late`, the
# batch counts each event once, and reconcile explains the drift
DEFAULT_FAULTS = "duplicate=0.002:4m,late=0.002:3m,malformed=0.001,schema=0.002,unknown_user=0.002"


@dataclass(frozen=True)
class DemoConfig:
    minutes: float = 5.0
    rate: float = 2_000.0
    users: int = 10_000
    products: int = 1_000
    seed: int = 42
    faults: str = DEFAULT_FAULTS
    churn_rate: float = 2.0
    # churn moves the tiers of this share of the users only, whose every event the truth
    # records: reconcile re-tiers the truth by the churn log, exact under churn too
    watch_share: float = 0.02
    keep_running: bool = True
    # then the batch half: batch run, publication, reconciliation of the traffic's day(s)
    batch: bool = True
    # A session is written when the watermark passes its last event + gap; with the production
    # rules (30 min gap, 10 min lateness, 5 min skew) a demo of a few minutes would show none.
    # The demo's speed layer closes sessions after 1 idle minute and accepts events 30 s late
    # (paced traffic is never later than that unless a fault makes it so).
    session_gap_s: int = 60
    lateness_s: int = 30
    max_future_skew_s: int = 10

    def speed_settings(self, settings: Settings) -> Settings:
        """`settings` with the demo's event-time rules for the speed layer."""
        speed = settings.speed.model_copy(
            update={
                "session_gap_s": self.session_gap_s,
                "lateness_s": self.lateness_s,
                "max_future_skew_s": self.max_future_skew_s,
            }
        )
        return settings.model_copy(update={"speed": speed})


@dataclass
class DemoResult:
    produced: Summary | None = None
    final: Snapshot = field(default_factory=Snapshot)
    funnel: dict[str, Any] = field(default_factory=dict)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    freshness: dict[str, float | None] = field(default_factory=dict)
    churn: ChurnReport = field(default_factory=ChurnReport)
    truth_path: Path | None = None
    churn_log: Path | None = None  # every tier move churn committed, with its commit time
    caught_up: bool = False
    # the merged answers after publication (batch up to the watermark, realtime after)
    merged_funnel: dict[str, Any] = field(default_factory=dict)
    merged_tiers: list[dict[str, Any]] = field(default_factory=list)
    merged_revenue: list[dict[str, Any]] = field(default_factory=list)
    batch: BatchHalf | None = None


T = TypeVar("T")
Say = Callable[[str], None]
Watch = Callable[[float, int, Snapshot], None]


def prepare(settings: Settings, config: DemoConfig, say: Say) -> Stack:
    """Everything before the traffic: stack, schemas, dimensions, CDC, serving, speed, lake."""
    stack = Stack(settings)
    say("starting the local stack")
    stack.up(progress=lambda line: say(f"  {line}"))
    say("registering the schemas")
    register_all(settings)
    say(f"loading {config.users:,} users and {config.products:,} products")
    load_dimensions(settings, config.users, config.products, config.seed)
    say("registering the Debezium connector")
    cdc.register(settings)
    say(
        "starting the serving layer and the speed layer (Spark takes a moment); sessions close"
        f" after {config.session_gap_s} idle seconds (production: {settings.speed.session_gap_s})"
    )
    Stack(config.speed_settings(settings)).up(
        ["serving", "speed"], progress=lambda line: say(f"  {line}")
    )
    # after the speed layer is up: two Spark drivers starting at once on 2 cores slow both
    say(f"starting the lake's archiver (a commit every {settings.lake.commit_interval})")
    stack.up(["archiver"], progress=lambda line: say(f"  {line}"))
    return stack


def run_demo(settings: Settings, config: DemoConfig, say: Say, watch: Watch) -> DemoResult:
    """Run the demo; `watch(elapsed_s, produced_so_far, snapshot)` is called every second.

    Any failure stops what the demo started and ends in a one-line Problem, never a trace.
    """
    stack = _guarded("start of the stack", lambda: prepare(settings, config, say))
    result = DemoResult()
    observer = Observer(settings)
    try:
        _guarded("first look at the serving layer", observer.begin)
        expected = _traffic(settings, config, result, observer, watch)
        result.final = _guarded(
            "wait for the speed layer",
            lambda: _wait_until_processed(observer, expected, watch, time.monotonic()),
        )
        result.caught_up = result.final.accepted_events + result.final.dead_lettered >= expected
        result.funnel, result.tiers, result.freshness = _guarded(
            "read of the results",
            lambda: (
                observer.funnel("realtime"),
                observer.tiers("realtime"),
                observer.freshness_percentiles(),
            ),
        )
        if config.batch and result.caught_up and result.truth_path is not None:
            truth_path = result.truth_path
            result.batch = _guarded(
                "batch half",
                lambda: run_batch_half(
                    settings,
                    config.speed_settings(settings),
                    truth_path,
                    result.churn_log if result.churn.changes else None,
                    say=say,
                ),
            )
            result.merged_funnel, result.merged_tiers, result.merged_revenue = _guarded(
                "read of the merged answers",
                lambda: (observer.funnel(), observer.tiers(), observer.revenue()),
            )
        elif config.batch:
            say("the speed layer did not catch up: no batch half (its numbers would not compare)")
    except BaseException:
        say("stopping what the demo started")
        stack.down(progress=lambda line: say(f"  {line}"))
        raise
    if not config.keep_running:
        stack.down(progress=lambda line: say(f"  {line}"))
    return result


def next_run(settings: Settings) -> int:
    """How many demos ran on this stack's data before (0 on a fresh or purged stack).

    Each run generates other visits of the same population: the same events again would be
    duplicates the pipeline rightly drops, and the demo would have nothing new to show.
    """
    counter = settings.data_dir / "demo" / "runs.json"
    runs = int(json.loads(counter.read_text())["runs"]) if counter.exists() else 0
    counter.parent.mkdir(parents=True, exist_ok=True)
    counter.write_text(json.dumps({"runs": runs + 1}) + "\n")
    return runs


def _guarded(what: str, step: Callable[[], T]) -> T:
    """Run `step`; an unexpected exception becomes a one-line Problem naming `what` failed."""
    try:
        return step()
    except Problem:
        raise
    except Exception as exc:
        raise stopped_by(what, exc, "`lambdapipe status` shows which service is down") from exc


def _traffic(
    settings: Settings, config: DemoConfig, result: DemoResult, observer: Observer, watch: Watch
) -> int:
    """Generate (and churn) in the background while watching; return the records the store must
    account for (each an accepted row or a dead letter: all but the injected duplicates)."""
    truth_path = result.truth_path = settings.home / "demo" / "truth.json"
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    run_config = plan(
        rate=config.rate,
        duration=f"{int(config.minutes * 60)}s",
        events=None,
        seed=config.seed,
        sink="kafka",
        start=None,
        users=config.users,
        products=config.products,
        faults=config.faults,
        truth=truth_path,
        watch_share=config.watch_share,
    )
    run_config = dataclasses.replace(
        run_config,
        run=next_run(settings),
        kafka={
            "bootstrap": settings.kafka.bootstrap,
            "events_topic": settings.kafka.events_topic,
            "transactions_topic": settings.kafka.transactions_topic,
        },
    )

    churn_log = result.churn_log = truth_path.with_name("churn.jsonl")

    def churner(on_change: Callable[[ChurnResult], None]) -> ChurnResult:
        return churn(
            settings,
            config.churn_rate,
            duration_s=config.minutes * 60,
            seed=config.seed,
            on_change=on_change,
            watch_share=config.watch_share,
            log=churn_log,
        )

    traffic = run_traffic(
        generate=lambda progress: generate(run_config, progress=progress),
        # churn's rate 0 would mean "as fast as possible": 0 here means no churn
        churn=churner if config.churn_rate > 0 else None,
        look=lambda elapsed, produced: watch(elapsed, produced, observer.snapshot()),
    )
    result.produced, result.churn = traffic.produced, traffic.churn
    return traffic.produced.records - len(traffic.produced.truth.duplicates)


def _wait_until_processed(
    observer: Observer, produced: int, watch: Watch, began: float, timeout_s: float = 180
) -> Snapshot:
    """Let the speed layer drain what was produced (bounded)."""
    snap = observer.snapshot()
    while (
        snap.accepted_events + snap.dead_lettered < produced
        and time.monotonic() - began < timeout_s
    ):
        watch(time.monotonic() - began, produced, snap)
        time.sleep(1)
        snap = observer.snapshot()
    return snap
