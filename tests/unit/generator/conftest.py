"""Helpers for generator tests: small runs into temporary files, read back as parsed records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from lambdapipe.generator.run import RunConfig, Summary, plan, run
from lambdapipe.generator.sinks import transactions_path

START = "2026-03-02T00:00:00Z"  # a Monday


@pytest.fixture
def generate(tmp_path: Path) -> Callable[..., tuple[Summary, Path]]:
    """Run the generator into tmp_path/name; returns the summary and the events path."""

    def _generate(name: str = "out.jsonl", **kwargs: Any) -> tuple[Summary, Path]:
        options: dict[str, Any] = {
            "rate": 0,
            "duration": None,
            "events": 50_000,
            "seed": 7,
            "start": START,
            "users": 2_000,
            "products": 500,
            "truth": tmp_path / f"{name}.truth.json",
        }
        options.update(kwargs)
        path = tmp_path / name
        config: RunConfig = plan(sink=f"file:{path}", **options)
        return run(config), path

    return _generate


def read_lines(path: Path) -> list[bytes]:
    """The raw records of a JSON-lines file."""
    return path.read_bytes().splitlines()


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parsed events and transactions of an events file and its transactions sibling."""
    events = [orjson.loads(line) for line in read_lines(path)]
    transactions = [orjson.loads(line) for line in read_lines(transactions_path(path))]
    return events, transactions
