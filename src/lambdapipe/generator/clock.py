"""The simulated clock: event time in integer microseconds, weekend traffic, fast formatting."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Final

US_PER_DAY: Final = 86_400_000_000
WEEKEND_FACTOR: Final = 1.3
# 1970-01-01 was a Thursday: (day + 3) % 7 is Monday=0 .. Sunday=6.
_EPOCH_WEEKDAY: Final = 3
_MS_SUFFIX: Final = tuple(f"{i:03d}Z" for i in range(1000))


def parse_time(text: str) -> int:
    """An ISO 8601 instant (naive means UTC) as microseconds since the epoch."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


def is_weekend(day: int) -> bool:
    """Whether day number `day` since the epoch is a Saturday or a Sunday."""
    return (day + _EPOCH_WEEKDAY) % 7 >= 5


def day_name(day: int) -> str:
    """Day number since the epoch as YYYY-MM-DD."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


class TimestampFormatter:
    """Formats epoch milliseconds as the schema's timestamp; the per-second prefix is cached."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, ms: int) -> str:
        """`ms` since the epoch as YYYY-MM-DDTHH:MM:SS.mmmZ."""
        second = ms // 1000
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return self._prefix + _MS_SUFFIX[ms % 1000]


class SimClock:
    """Event time of one stream: advances `step_us` per tick, `WEEKEND_FACTOR` times denser on
    Saturdays and Sundays, so weekends carry 1.3x the traffic (and the transactions) of weekdays.
    """

    __slots__ = ("_day_end", "_step", "_weekday_step", "_weekend_step", "now_us")

    def __init__(self, start_us: int, step_us: float) -> None:
        self.now_us = float(start_us)
        self._weekday_step = step_us
        self._weekend_step = step_us / WEEKEND_FACTOR
        self._day_end = 0.0
        self._step = step_us
        self._enter_day()

    def _enter_day(self) -> None:
        day = int(self.now_us // US_PER_DAY)
        self._day_end = float((day + 1) * US_PER_DAY)
        self._step = self._weekend_step if is_weekend(day) else self._weekday_step

    def time_after(self, ticks: int) -> float:
        """The event time `ticks` ticks from now, without advancing (day by day, as `tick`)."""
        now, step, day_end = self.now_us, self._step, self._day_end
        while ticks > 0:
            to_day_end = max(1, math.ceil((day_end - now) / step))
            if ticks <= to_day_end:
                return now + ticks * step
            now, ticks = now + to_day_end * step, ticks - to_day_end
            day = int(now // US_PER_DAY)
            day_end = float((day + 1) * US_PER_DAY)
            step = self._weekend_step if is_weekend(day) else self._weekday_step
        return now

    def tick(self) -> int:
        """Advance one event and return the new event time in microseconds."""
        now = self.now_us + self._step
        self.now_us = now
        if now >= self._day_end:
            self._enter_day()
        return int(now)


class Pacer:
    """Holds a stream back so that event time does not run ahead of the wall clock."""

    __slots__ = ("_event0", "_wall0")

    def __init__(self, event_start_us: int) -> None:
        self._event0 = event_start_us
        self._wall0 = time.monotonic()

    def wait_until(self, event_us: int) -> None:
        """Sleep until the wall clock has advanced as far as event time has."""
        delay = (event_us - self._event0) / 1e6 - (time.monotonic() - self._wall0)
        if delay > 0.0005:
            time.sleep(delay)


_UNITS: Final = {
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": US_PER_DAY,
    "w": 7 * US_PER_DAY,
}


def parse_duration(text: str) -> int:
    """A duration such as `500ms`, `90s`, `30m`, `2h`, `28d`, `4w` (bare numbers are seconds)
    as microseconds."""
    text = text.strip()
    for unit in ("ms", "s", "m", "h", "d", "w"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return int(float(text[: -len(unit)]) * _UNITS[unit])
    if text.replace(".", "", 1).isdigit():
        return int(float(text) * 1_000_000)
    raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 90s, 30m, 2h, 28d, 4w)")
