"""The generator's truth (`generate --truth PATH`, docs/generator.md) as reconcile's metrics.

Per day the truth knows events by type and tier, transactions and money by tier, and every
session (its start and tier). Its funnel is over all sessions, so it is the day's only when every
session of the truth started on that day; its dead letters are not per day (a record with no
readable time belongs to the day it arrived), so reconcile compares them between the layers only.

The truth keys everything by the tier the generator drew; `dims churn --log` moves tiers while
traffic runs. `retiered` follows those moves through the watched users' recorded events, with
the batch layer's rule (a tier is the user's as of the event time, docs/generator.md#tier-churn).
"""

from __future__ import annotations

import bisect
import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from lambdapipe.errors import Problem
from lambdapipe.generator.population import watched

MONEY = ("gross_bookings", "revenue", "refunds")
MS_PER_DAY = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# the money of a transaction: every one's in gross bookings, then by its status
MONEY_OF_STATUS = {"completed": "revenue", "refunded": "refunds"}


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


@dataclass
class TierTimeline:
    """One user's tiers through churn: `first` until the first move, then each move's new tier
    from its commit instant on (epoch ms, in commit order)."""

    first: str
    at_ms: list[int] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)

    def tier_at(self, ms: int) -> str:
        """The tier at instant `ms`: a move committed at `ms` already counts (the batch's
        `valid_from <= event time`)."""
        i = bisect.bisect_right(self.at_ms, ms)
        return self.tiers[i - 1] if i else self.first


def read_churn_log(path: Path) -> dict[str, TierTimeline]:
    """The churn log `dims churn --log PATH` wrote, as each user's tier timeline."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise Problem(
            f"no churn log at {path}", hint="`lambdapipe dims churn --log PATH` writes one"
        ) from None
    timelines: dict[str, TierTimeline] = {}
    for n, line in enumerate(lines, 1):
        try:
            entry = orjson.loads(line)
            user_id = entry["user_id"]
            if "tier" in entry:
                timelines[user_id] = TierTimeline(entry["tier"])
                continue
            at = datetime.fromisoformat(entry["committed_at"]).astimezone(UTC)
            timeline = timelines.setdefault(user_id, TierTimeline(entry["from"]))
            timeline.at_ms.append((at - EPOCH) // timedelta(milliseconds=1))
            timeline.tiers.append(entry["to"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise Problem(f"line {n} of the churn log {path} is no churn record: {exc}") from None
    return timelines


def retiered(doc: dict[str, Any], timelines: dict[str, TierTimeline]) -> dict[str, Any]:
    """The truth document with the watched users' events, transactions and sessions keyed by
    the tier each had as of its time under `timelines` (a session: as of its first event, as
    the batch's sessions take it); `doc` is left as it was."""
    section = doc.get("watched") or {}
    share = float(section.get("share", 0.0))
    outside = [u for u, t in timelines.items() if t.at_ms and not watched(u, share)]
    if outside:
        raise Problem(
            f"the churn log moves {len(outside):,} users whose events the truth did not record "
            f"(its watched share is {share})",
            hint="give `generate --watch-share` and `dims churn --watch-share` the same share",
        )
    out = copy.deepcopy(doc)
    events, by_tier = out["events_by_day"], out["totals"]["by_tier"]
    cents = {name: _cents(out.setdefault(f"{name}_by_day", {})) for name in MONEY}
    counts = out.setdefault("transactions_by_day", {})
    session_tier: dict[str, str] = {}
    for session in section.get("sessions", []):
        timeline = timelines.get(session["user_id"])
        if timeline is None or not session["events"]:
            continue
        drawn = session["tier"]
        session_tier[session["session_id"]] = timeline.tier_at(session["events"][0][0])
        for ms, kind, *transaction in session["events"]:
            tier = timeline.tier_at(ms)
            if tier == drawn:
                continue
            day = _day(ms)
            _move(events[day][kind], drawn, tier, 1)
            _move(by_tier, drawn, tier, 1)
            if transaction:
                amount, status = transaction
                _move(counts[day], drawn, tier, 1)
                total = int(Decimal(amount) * 100)
                _move(cents["gross_bookings"].setdefault(day, {}), drawn, tier, total)
                if status in MONEY_OF_STATUS:
                    _move(cents[MONEY_OF_STATUS[status]].setdefault(day, {}), drawn, tier, total)
    for name in MONEY:
        out[f"{name}_by_day"] = {
            day: {tier: f"{Decimal(c) / 100:.2f}" for tier, c in tiers.items()}
            for day, tiers in cents[name].items()
        }
    for s in out["sessions"]:
        s["tier"] = session_tier.get(s["session_id"], s["tier"])
    return out


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms // MS_PER_DAY * 86_400, UTC).date().isoformat()


def _cents(by_day: dict[str, dict[str, str]]) -> dict[str, dict[str, int]]:
    return {
        day: {tier: int(Decimal(amount) * 100) for tier, amount in tiers.items()}
        for day, tiers in by_day.items()
    }


def _move(counts: dict[str, int], drawn: str, tier: str, n: int) -> None:
    """Move `n` from tier `drawn` to `tier`; a tier left at 0 goes, as the truth writes none."""
    counts[drawn] -= n
    if not counts[drawn]:
        del counts[drawn]
    counts[tier] = counts.get(tier, 0) + n
