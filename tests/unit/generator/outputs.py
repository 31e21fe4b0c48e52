"""Generator test helpers: the simulated start, and a run's files read back as records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from lambdapipe.generator.sinks import transactions_path

START = "2026-03-02T00:00:00Z"  # a Monday


def read_lines(path: Path) -> list[bytes]:
    """The raw records of a JSON-lines file."""
    return path.read_bytes().splitlines()


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parsed events and transactions of an events file and its transactions sibling."""
    events = [orjson.loads(line) for line in read_lines(path)]
    transactions = [orjson.loads(line) for line in read_lines(transactions_path(path))]
    return events, transactions
