"""Generator test fixtures: small runs into temporary files (reading them back: outputs.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lambdapipe.generator.run import RunConfig, Summary, plan, run
from tests.unit.generator.outputs import START


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
