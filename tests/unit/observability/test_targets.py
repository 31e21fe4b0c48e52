"""One writer of Prometheus file_sd targets, in the folder and shape the local Prometheus reads."""

from __future__ import annotations

import json
from pathlib import Path

from lambdapipe.observability.targets import register_target, targets_dir
from lambdapipe.runtime.services.prometheus import Prometheus
from lambdapipe.settings import Settings


def test_a_registered_target_is_what_prometheus_discovers(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    target = register_target(settings, "speed", "127.0.0.1", 9108, {"layer": "speed"})
    assert target == tmp_path / "conf" / "prometheus-targets" / "speed.json"
    assert json.loads(target.read_text()) == [
        {"targets": ["127.0.0.1:9108"], "labels": {"job": "lambdapipe-speed", "layer": "speed"}}
    ]
    scrapes = Prometheus(settings).config()["scrape_configs"]
    assert isinstance(scrapes, list)
    jobs = {job["job_name"]: job for job in scrapes}
    (pattern,) = jobs["lambdapipe"]["file_sd_configs"][0]["files"]
    assert sorted(Path(pattern).parent.glob(Path(pattern).name)) == [target]


def test_registering_again_replaces_the_target(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    register_target(settings, "serving", "127.0.0.1", 8000)
    register_target(settings, "serving", "127.0.0.1", 8001)
    (entry,) = json.loads((targets_dir(settings) / "serving.json").read_text())
    assert entry["targets"] == ["127.0.0.1:8001"]
    assert [p.name for p in targets_dir(settings).iterdir()] == ["serving.json"]
