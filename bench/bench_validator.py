"""Throughput of `validate_event` against plain `orjson.loads` on the same 1,000,000 events.

Run: `uv run python bench/bench_validator.py [--events N] [--rounds R]`. Prints JSON and writes
it to bench/results/validator.json. All loops run in this process on one core, so the ratios are
meaningful even when absolute numbers vary between machines; the load average at the start and
end is recorded, since other processes slow every loop alike but add noise.
"""

import argparse
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.progress import Progress

from lambdapipe.contracts import validate_event
from lambdapipe.contracts.registry import EVENT_TYPES, schemas_dir

SHARES = {
    "page_view": 35,
    "product_view": 25,
    "search": 15,
    "add_to_cart": 10,
    "purchase": 5,
    "remove_from_cart": 4,
    "checkout_start": 3,
    "login": 2,
    "logout": 1,
}
RESULTS = Path(__file__).parent / "results" / "validator.json"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_events(count: int, seed: int = 7) -> list[bytes]:
    """Valid events with the target type mix; users and sessions repeat as in a real stream."""
    rng = random.Random(seed)
    examples = {
        et: orjson.loads((schemas_dir() / "examples" / f"{et}.json").read_bytes())
        for et in EVENT_TYPES
    }
    users = [_uuid(rng) for _ in range(5_000)]
    products = [_uuid(rng) for _ in range(1_000)]
    sessions: dict[str, str] = {}
    start = datetime.now(UTC) - timedelta(hours=2)
    types = rng.choices(list(SHARES), weights=list(SHARES.values()), k=count)
    events = []
    for i, event_type in enumerate(types):
        event: dict[str, Any] = dict(examples[event_type])
        event["event_id"] = _uuid(rng)
        event["user_id"] = users[rng.randrange(len(users))]
        if i % 10 == 0 or event["user_id"] not in sessions:
            sessions[event["user_id"]] = _uuid(rng)
        event["session_id"] = sessions[event["user_id"]]
        event["timestamp"] = (
            (start + timedelta(milliseconds=i * 7))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        event["ip_address"] = ".".join(
            ["10", str(rng.randrange(256)), str(rng.randrange(256)), str(rng.randrange(1, 255))]
        )
        if "product_id" in event:
            event["product_id"] = products[rng.randrange(len(products))]
        if "transaction_id" in event:
            event["transaction_id"] = _uuid(rng)
        events.append(orjson.dumps(event))
    return events


def _measure(events: list[bytes], rounds: int, progress: Progress) -> tuple[float, float]:
    """Events per second of orjson.loads and validate_event over the same events.

    The loops alternate chunk by chunk, and each chunk keeps its best time over `rounds`
    rounds, so that load from other processes on the machine affects them alike.
    """
    chunk = 50_000
    chunks = [events[i : i + chunk] for i in range(0, len(events), chunk)]
    best = {name: [float("inf")] * len(chunks) for name in ("loads", "validate")}
    task = progress.add_task("orjson.loads vs validate_event", total=rounds * len(events))
    loads = orjson.loads
    for _ in range(rounds):
        for index, batch in enumerate(chunks):
            began = time.perf_counter()
            for raw in batch:
                loads(raw)
            loaded = time.perf_counter()
            for raw in batch:
                validate_event(raw)
            validated = time.perf_counter()
            for name, seconds in (("loads", loaded - began), ("validate", validated - loaded)):
                best[name][index] = min(best[name][index], seconds)
            progress.advance(task, len(batch))
    loads_rate, validate_rate = (len(events) / sum(best[n]) for n in best)
    return loads_rate, validate_rate


def main() -> None:
    """Generate the events, time both loops, print and save the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Progress(transient=True) as progress:
        progress.add_task("generating events", total=None)
        events = make_events(args.events)
    rejected = [r for r in map(validate_event, events[:1000]) if not r.ok]
    if rejected:
        raise SystemExit(f"bench events must be valid, got {rejected[0]}")
    load_before = os.getloadavg()[0]
    with Progress() as progress:
        baseline, validator = _measure(events, args.rounds, progress)
    result = {
        "events": len(events),
        "rounds": args.rounds,
        "mean_event_bytes": round(sum(map(len, events)) / len(events), 1),
        "baseline_orjson_events_per_s": round(baseline),
        "validator_events_per_s": round(validator),
        "ratio": round(baseline / validator, 3),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
