"""The local Prometheus's file-based service discovery: one file per lambdapipe process.

Prometheus (`runtime/services/prometheus.py`) reads `<conf_dir>/prometheus-targets/*.json`;
each process that serves metrics registers itself there when it starts, as job
`lambdapipe-<name>`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lambdapipe.settings import Settings


def targets_dir(settings: Settings) -> Path:
    """The folder Prometheus watches for lambdapipe's own processes."""
    return settings.conf_dir / "prometheus-targets"


def register_target(
    settings: Settings,
    name: str,
    host: str,
    port: int,
    labels: dict[str, str] | None = None,
) -> Path:
    """Write `<name>.json` so Prometheus scrapes `host:port` as job `lambdapipe-<name>`."""
    folder = targets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    entry = [
        {"targets": [f"{host}:{port}"], "labels": {"job": f"lambdapipe-{name}", **(labels or {})}}
    ]
    target = folder / f"{name}.json"
    partial = target.with_suffix(".json.tmp")
    partial.write_text(json.dumps(entry, indent=2) + "\n")
    # Prometheus re-reads the folder every 5 s: it must never see a half-written file
    partial.replace(target)
    return target
