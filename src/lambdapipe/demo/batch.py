"""The demo's batch half: once the traffic has drained through the speed layer, the lake catches
up with Kafka, the batch recomputes the traffic's day(s), publishes them into the serving store
and reconciliation compares speed, batch and the generator's truth.

The traffic is today's, sent now (docs/demo.md says why): the batch runs the day as far as the
traffic went, publishing it moves the batch watermark to today, and reconcile calls the day
`incomplete` (the speed layer has not passed its end) with every difference still attributed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdapipe.errors import Problem
from lambdapipe.settings import Settings

if TYPE_CHECKING:
    from lambdapipe.reconcile.compare import Reconciliation
    from lambdapipe.serving.publish import Publication

Say = Callable[[str], None]


@dataclass
class BatchHalf:
    """What the batch half did: the days, each day's publication and reconciliation."""

    days: list[date] = field(default_factory=list)
    publications: list[Publication] = field(default_factory=list)
    reconciliations: list[Reconciliation] = field(default_factory=list)
    # the truth's totals per day and metric
    truth_totals: dict[date, dict[str, Decimal]] = field(default_factory=dict)
    watermark: date | None = None
    # why the days were not published (a kept stack whose published days end days ago)
    not_published: str = ""


def traffic_days(truth: dict[str, Any]) -> list[date]:
    """The days the traffic's events fall on (event time, UTC)."""
    return [date.fromisoformat(d) for d in sorted(truth["events_by_day"])]


def wait_for_lake(settings: Settings, say: Say, timeout_s: float = 600) -> None:
    """Until every raw table holds what Kafka holds (the archiver commits every
    `lake.commit_interval`); a Problem naming the tables still behind at the timeout."""
    from lambdapipe.lake.status import lake_status

    began = time.monotonic()
    shown = -1
    while True:
        status = lake_status(settings)
        behind = {t.name: t.behind for t in status if t.behind or not t.exists}
        total = sum(behind.values())
        if not behind:
            return
        if time.monotonic() - began > timeout_s:
            raise Problem(
                "the lake's archiver did not catch up with Kafka in "
                f"{timeout_s:.0f} s: " + ", ".join(f"{n} {k:,} behind" for n, k in behind.items()),
                hint="`lambdapipe lake status`; the archiver's log: archiver.log",
            )
        if total != shown:
            say(f"  the lake is {total:,} records behind Kafka ({', '.join(sorted(behind))})")
            shown = total
        time.sleep(3)


def run_batch_half(
    settings: Settings,
    speed_settings: Settings,
    truth_path: Path,
    churn_log: Path | None,
    say: Say,
) -> BatchHalf:
    """Lake catch-up, `batch run --publish` for the traffic's days, reconcile each day.

    `speed_settings` carry the speed layer's event-time rules (the batch sessionizes with its
    gap, reconcile judges a day against its lateness);
    `churn_log` (the tier moves churn committed, when it ran) re-tiers the truth as the batch
    tiers events, so the three-way comparison holds per tier under churn too.
    """
    from lambdapipe.batch.job import main as run_days
    from lambdapipe.batch.publish import publish
    from lambdapipe.reconcile.cli import publish as record_reconciliation
    from lambdapipe.reconcile.cli import reconcile_day
    from lambdapipe.reconcile.truth import read_truth, truth_metrics
    from lambdapipe.resources import Resources
    from lambdapipe.serving.publish import published

    truth = read_truth(truth_path)
    half = BatchHalf(days=traffic_days(truth))
    days = ", ".join(d.isoformat() for d in half.days)
    say("waiting until the lake's archiver has committed everything produced")
    began = time.monotonic()
    wait_for_lake(settings, say)
    say(f"  the lake holds everything Kafka holds ({time.monotonic() - began:.0f} s)")
    say(f"batch run for {days}: curated tables, warehouse RAW, dbt (Spark takes a moment)")
    began = time.monotonic()
    # the speed layer's session gap and skew: both layers sessionize by one rule
    run_days(speed_settings, half.days, progress=lambda line: say(f"  {line}"))
    say(f"  batch run done in {time.monotonic() - began:.0f} s")
    resources = Resources(settings)
    with resources.store() as writer:
        say(f"publishing {days} into the serving store")
        try:
            half.publications = publish(
                settings, writer, half.days, progress=lambda line: say(f"  {line}")
            )
        except Problem as exc:  # reconcile needs no publication: go on, and say what to do
            half.not_published = f"{exc} ({exc.hint})" if exc.hint else str(exc)
            say(f"  not published: {half.not_published}")
        half.watermark = published(writer).watermark
        with resources.store(role="reader") as reader, resources.warehouse() as warehouse:
            for day in half.days:
                say(f"reconciling {day}: speed vs batch vs truth")
                result = reconcile_day(
                    reader, warehouse, day, truth_path, speed_settings, churn=churn_log
                )
                record_reconciliation(result, writer, warehouse, datetime.now(UTC))
                half.reconciliations.append(result)
                totals: dict[str, Decimal] = {}
                for row in truth_metrics(truth, day).values.to_pylist():
                    metric = row["metric"] if row["metric"] != "funnel" else f"funnel/{row['key']}"
                    totals[metric] = totals.get(metric, Decimal(0)) + row["value"]
                half.truth_totals[day] = totals
    return half


def totals(result: Reconciliation) -> dict[str, dict[str, Decimal]]:
    """Per metric (each funnel step its own), the speed, batch and cause columns summed over
    the keys; a tier move adds nothing to a total, so `tier` is the sum of |moves| / 2."""
    from lambdapipe.reconcile.compare import CAUSES

    out: dict[str, dict[str, Decimal]] = {}
    for row in result.rows:
        metric = row["metric"] if row["metric"] != "funnel" else f"funnel/{row['key']}"
        sums = out.setdefault(metric, {})
        for column in ("speed", "batch", "diff", "unexplained", *CAUSES):
            value = Decimal(row[column] or 0)
            if column == "tier":
                value = abs(value) / 2
            sums[column] = sums.get(column, Decimal(0)) + value
    return out
