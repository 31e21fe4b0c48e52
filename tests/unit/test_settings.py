"""Settings: environment overrides, secrets that never leak, ports that move together."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lambdapipe.runtime.services.kafka import KafkaNode
from lambdapipe.runtime.stack import services, with_kafka_nodes
from lambdapipe.settings import SECRET_FIELDS, Settings, ensure_local_secrets, get_settings

SRC = Path(__file__).resolve().parents[2] / "src"


def test_environment_overrides_nested_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAMBDAPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("LAMBDAPIPE_KAFKA__BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("LAMBDAPIPE_POSTGRES__PORT", "6543")
    settings = get_settings()
    assert settings.kafka.bootstrap == "broker-a:9092,broker-b:9092"
    assert settings.postgres.port == 6543
    assert settings.home == tmp_path


def test_local_secrets_are_random_private_and_stable(tmp_path: Path) -> None:
    path = ensure_local_secrets(tmp_path)
    first = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(first.splitlines()) == len(SECRET_FIELDS)
    assert ensure_local_secrets(tmp_path).read_text() == first
    other = ensure_local_secrets(tmp_path / "other").read_text()
    assert set(first.splitlines()).isdisjoint(other.splitlines())


def test_secrets_never_appear_in_reprs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAMBDAPIPE_HOME", str(tmp_path))
    settings = get_settings()
    secret = settings.postgres.app_password.get_secret_value()
    assert len(secret) >= 24
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())


def test_port_offset_moves_every_port(tmp_path: Path) -> None:
    base = Settings(home=tmp_path)
    shifted = Settings(home=tmp_path, port_offset=1000)
    base_ports = sorted(p for s in services(base) for p in s.ports)
    shifted_ports = sorted(p for s in services(shifted) for p in s.ports)
    assert shifted_ports == [p + 1000 for p in base_ports]
    assert len(set(base_ports)) == len(base_ports), "two services share a port"


def test_three_nodes_replicate_three_ways(tmp_path: Path) -> None:
    settings = with_kafka_nodes(Settings(home=tmp_path), 3)
    nodes = [s for s in services(settings) if isinstance(s, KafkaNode)]
    assert [n.name for n in nodes] == ["kafka-0", "kafka-1", "kafka-2"]
    props = nodes[1].server_properties()
    assert props["node.id"] == 1
    assert props["default.replication.factor"] == 3
    assert props["min.insync.replicas"] == 2
    assert str(props["controller.quorum.voters"]).count("@") == 3
    assert settings.kafka.bootstrap.count(",") == 2


def test_kafka_node_count_is_checked(tmp_path: Path) -> None:
    from lambdapipe.errors import Problem

    with pytest.raises(Problem, match="1 or 3"):
        with_kafka_nodes(Settings(home=tmp_path), 2)


CREDENTIAL = re.compile(
    r"""(password|passwd|secret|credential|access_key)\w*\s*[=:]\s*["'][^"'{}\s]{4,}["']""",
    re.IGNORECASE,
)


def test_no_credential_literal_in_code() -> None:
    offenders = [
        f"{path}:{n}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if CREDENTIAL.search(line)
    ]
    assert offenders == []


def test_a_setting_changed_in_the_parent_reaches_the_demos_children(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    from lambdapipe.demo.run import DemoConfig
    from lambdapipe.runtime.stack import Stack

    monkeypatch.setenv("LAMBDAPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("LAMBDAPIPE_PORT_OFFSET", "300")
    # settings no hand-picked list ever carried to the children
    monkeypatch.setenv("LAMBDAPIPE_SPEED__TRIGGER_INTERVAL", "7 seconds")
    monkeypatch.setenv("LAMBDAPIPE_SERVING__RETENTION_DAYS", "9")
    parent = DemoConfig(lateness_s=77).speed_settings(get_settings())
    show = "from lambdapipe.settings import get_settings; print(get_settings().model_dump_json())"
    for service in Stack(parent).select(["serving", "speed"]):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDAPIPE_")}
        child = subprocess.run(
            [sys.executable, "-c", show],
            env={**env, **service.env()},
            capture_output=True,
            text=True,
            check=True,
        )
        seen = json.loads(child.stdout)
        assert seen["speed"]["trigger_interval"] == "7 seconds", service.name
        assert seen["speed"]["lateness_s"] == 77, service.name
        assert seen["serving"]["retention_days"] == 9
        assert seen["serving"]["port"] == parent.serving.port
        expected = json.loads(parent.model_dump_json())
        expected["port_offset"] = 0  # the ports arrive already shifted
        assert seen == expected
