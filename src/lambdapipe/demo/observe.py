"""What the demo watches and summarises, read from the serving layer like any client would."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from lambdapipe.resources import Resources
from lambdapipe.serving.auth import api_headers
from lambdapipe.settings import Settings


@dataclass
class Snapshot:
    """The pipeline's state at one moment."""

    accepted_events: int = 0
    transactions: int = 0
    sessions: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    freshness_s: float | None = None

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    def since(self, earlier: Snapshot) -> Snapshot:
        """What was added after `earlier` (the freshness is this snapshot's own)."""
        dead_letters = {
            reason: n - earlier.dead_letters.get(reason, 0)
            for reason, n in self.dead_letters.items()
        }
        return Snapshot(
            accepted_events=self.accepted_events - earlier.accepted_events,
            transactions=self.transactions - earlier.transactions,
            sessions=self.sessions - earlier.sessions,
            dead_letters={reason: n for reason, n in dead_letters.items() if n},
            freshness_s=self.freshness_s,
        )


class Observer:
    """Counts in the serving store, and the serving API's own views."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = f"{settings.serving.endpoint}/api"
        self.headers = api_headers(settings.serving)
        self.since = datetime.now(UTC)
        self.baseline = Snapshot()

    def begin(self) -> None:
        """Count from now on: a kept stack also holds the rows of earlier demos."""
        self.baseline = Snapshot()
        self.baseline = self.snapshot()
        self.since = datetime.now(UTC)

    def snapshot(self) -> Snapshot:
        """Counts since `begin`, and how far the newest event is behind the clock."""
        with Resources(self.settings).store(role="reader") as store:
            counts = store.query_rows(
                "SELECT (SELECT count() FROM user_events_realtime) AS events,"
                " (SELECT count() FROM transactions_realtime) AS transactions,"
                " (SELECT count() FROM user_sessions_realtime) AS sessions"
            )[0]
            reasons = store.query_rows(
                "SELECT reason, count() AS n FROM dead_letters_realtime GROUP BY reason"
            )
        everything = Snapshot(
            accepted_events=int(counts["events"]),
            transactions=int(counts["transactions"]),
            sessions=int(counts["sessions"]),
            dead_letters={str(r["reason"]): int(r["n"]) for r in reasons},
            freshness_s=self._freshness(),
        )
        return everything.since(self.baseline)

    def _freshness(self) -> float | None:
        rows = httpx.get(f"{self.api}/freshness", headers=self.headers, timeout=10).json()
        events = [r for r in rows if r["table"] == "user_events_realtime"]
        value = events[0]["freshness_s"] if events else None
        return float(value) if value is not None else None

    def freshness_percentiles(self) -> dict[str, float | None]:
        """p50/p95 of event time to written (`ingested_at`) of the events written since `since`."""
        with Resources(self.settings).store(role="reader") as store:
            row = store.query_rows(
                "SELECT quantiles(0.5, 0.95)(dateDiff('millisecond', timestamp, ingested_at))"
                " AS q, count() AS n FROM user_events_realtime"
                " WHERE ingested_at >= {since:DateTime64(3)}",
                {"since": self.since},
            )[0]
        if not int(row["n"]):
            return {"p50": None, "p95": None}
        p50, p95 = (float(q) / 1000 for q in row["q"])
        return {"p50": p50, "p95": p95}

    def funnel(self, source: str = "merged") -> dict[str, Any]:
        return dict(self._get("funnel", source))

    def tiers(self, source: str = "merged") -> list[dict[str, Any]]:
        return list(self._get("tiers", source))

    def revenue(self, source: str = "merged") -> list[dict[str, Any]]:
        return list(self._get("revenue", source, interval="day"))

    def _get(self, path: str, source: str, **params: str) -> Any:
        """An API answer over yesterday to tomorrow, from `source` (merged, realtime, batch)."""
        response = httpx.get(
            f"{self.api}/{path}",
            params={**_days(), "source": source, **params},
            headers=self.headers,
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


def _days() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=1))}
