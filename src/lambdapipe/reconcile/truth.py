"""The generator's truth (`generate --truth PATH`, docs/generator.md) as reconcile's metrics.

Per day the truth knows events by type and tier, transactions and money by tier, and every
session (its start and tier). Its funnel is over all sessions, so it is the day's only when every
session of the truth started on that day; its dead letters are not per day (a record with no
readable time belongs to the day it arrived), so reconcile compares them between the layers only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from lambdapipe.errors import Problem

MONEY = ("gross_bookings", "revenue", "refunds")


def read_truth(path: Path) -> dict[str, Any]:
    """The truth document at `path`."""
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise Problem(
            f"no truth file at {path}", hint="`lambdapipe generate --truth PATH` writes one"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise Problem(f"the truth file {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or "events_by_day" not in doc or "sessions" not in doc:
        raise Problem(
            f"{path} is not a generator truth file (no events_by_day or sessions)",
            hint="pass the file `lambdapipe generate --truth PATH` wrote",
        )
    return doc


@dataclass(frozen=True)
class TruthMetrics:
    """The truth's numbers of one day, and the metrics it knows (a missing key there is 0)."""

    values: pa.Table  # metric, key, value
    metrics: tuple[str, ...]


def truth_metrics(doc: dict[str, Any], day: date) -> TruthMetrics:
    """The truth's numbers for `day`, named as `compare` names them."""
    d = day.isoformat()
    rows: list[tuple[str, str, Decimal]] = []
    for kind, tiers in doc["events_by_day"].get(d, {}).items():
        rows += [("events", f"{kind}/{tier}", Decimal(n)) for tier, n in tiers.items()]
    for tier, n in doc.get("transactions_by_day", {}).get(d, {}).items():
        rows.append(("transactions_by_tier", tier, Decimal(n)))
    for name in MONEY:
        for tier, amount in doc.get(f"{name}_by_day", {}).get(d, {}).items():
            rows.append((name, tier, Decimal(amount)))
    sessions = doc["sessions"]
    started = Counter(s["tier"] for s in sessions if s["start"].startswith(d))
    rows += [("sessions", tier, Decimal(n)) for tier, n in started.items()]
    known: list[str] = []
    if d in doc["events_by_day"]:
        known += ["events", "transactions_by_tier", *MONEY, "sessions"]
    funnel = doc.get("funnel")
    if funnel and sessions and all(s["start"].startswith(d) for s in sessions):
        rows += [("funnel", step, Decimal(n)) for step, n in funnel.items()]
        known.append("funnel")
    values = pa.table(
        {
            "metric": pa.array([r[0] for r in rows], pa.string()),
            "key": pa.array([r[1] for r in rows], pa.string()),
            "value": pa.array([r[2] for r in rows], pa.decimal128(38, 2)),
        }
    )
    return TruthMetrics(values, tuple(known))
