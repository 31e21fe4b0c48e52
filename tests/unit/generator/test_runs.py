"""Another run of the same population: other visits and ids, the same users and products."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson

from lambdapipe.generator.population import users
from lambdapipe.generator.run import plan, run
from tests.unit.generator.outputs import START, read_lines


def events_of(tmp_path: Path, name: str, run_number: int) -> list[dict[str, object]]:
    path = tmp_path / name
    config = plan(
        rate=0, duration=None, events=5_000, seed=7, sink=f"file:{path}", start=START,
        users=500, products=100,
    )  # fmt: skip
    run(dataclasses.replace(config, run=run_number))
    return [orjson.loads(line) for line in read_lines(path)]


def test_run_zero_is_the_seeds_own_stream(tmp_path: Path) -> None:
    assert events_of(tmp_path, "a.jsonl", 0) == events_of(tmp_path, "b.jsonl", 0)


def test_a_later_run_has_new_event_ids_for_the_same_users(tmp_path: Path) -> None:
    first, second = events_of(tmp_path, "a.jsonl", 0), events_of(tmp_path, "b.jsonl", 1)
    assert {e["event_id"] for e in first}.isdisjoint(e["event_id"] for e in second)
    population = {u.user_id for u in users(500, 7)}
    assert {e["user_id"] for e in second} <= population
