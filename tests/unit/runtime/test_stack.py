"""The local stack's pure logic: which services, in which waves, for how many Kafka nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdapipe.errors import Problem
from lambdapipe.runtime.stack import Stack, start_waves, with_kafka_nodes
from lambdapipe.settings import Settings


def stack(home: Path, kafka_nodes: int = 1) -> Stack:
    return Stack(with_kafka_nodes(Settings(home=home), kafka_nodes))


def names(services: list[object]) -> list[str]:
    return [s.name for s in services]  # type: ignore[attr-defined]


def test_everything_but_the_optional_pipeline_by_default(tmp_path: Path) -> None:
    chosen = names(stack(tmp_path).select(None))
    assert chosen == ["postgres", "s3proxy", "kafka-0", "connect", "apicurio", "prometheus"]


def test_down_reaches_the_optional_services_too(tmp_path: Path) -> None:
    local = stack(tmp_path)
    optional = {s.name for s in local.services if s.optional}
    assert {"serving", "speed"} <= optional
    assert set(names(local.select(None, optional=True))) == {s.name for s in local.services}
    assert optional.isdisjoint(names(local.select(None)))


def test_named_services_come_in_start_order(tmp_path: Path) -> None:
    assert names(stack(tmp_path).select(["speed", "postgres", "serving"])) == [
        "postgres",
        "serving",
        "speed",
    ]


def test_kafka_names_every_node(tmp_path: Path) -> None:
    chosen = names(stack(tmp_path, kafka_nodes=3).select(["connect", "kafka"]))
    assert chosen == ["kafka-0", "kafka-1", "kafka-2", "connect"]


def test_unknown_services_are_named_in_the_problem(tmp_path: Path) -> None:
    with pytest.raises(Problem, match="unknown service\\(s\\): kafak, redis"):
        stack(tmp_path).select(["postgres", "redis", "kafak"])


def test_the_cluster_profile_has_no_local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDAPIPE_PROFILE", "cluster")
    with pytest.raises(Problem, match="external services"):
        Stack(Settings(home=tmp_path))


def test_waves_follow_dependency_depth(tmp_path: Path) -> None:
    local = stack(tmp_path, kafka_nodes=3)
    waves = local._waves(local.services)
    assert names(waves[0]) == [s.name for s in local.services if not s.depends_on]
    assert {"connect", "apicurio", "speed"} <= set(names(waves[1]))
    seen: set[str] = set()
    previous: set[str] = set()
    for wave in waves:
        # each wave needs only earlier waves, and each service sits in the first wave it can
        assert all(set(s.depends_on) <= seen for s in wave)
        assert all(set(s.depends_on) & previous for s in wave) or not previous
        previous = set(names(wave))
        seen |= previous
    assert seen == {s.name for s in local.services}


def test_up_starts_in_the_same_waves_when_nothing_runs(tmp_path: Path) -> None:
    local = stack(tmp_path)
    everything = local.select(None, optional=True)
    assert [names(w) for w in start_waves(everything, set())] == [
        names(w) for w in local._waves(everything)
    ]


def test_what_already_runs_counts_as_ready(tmp_path: Path) -> None:
    local = stack(tmp_path)
    pipeline = local.select(["serving", "speed"])
    assert [names(w) for w in start_waves(pipeline, {"kafka-0"})] == [["serving"], ["speed"]]
    assert [names(w) for w in start_waves(local.select(["speed"]), {"kafka-0", "serving"})] == [
        ["speed"]
    ]


def test_a_dependency_down_is_refused_before_anything_starts(tmp_path: Path) -> None:
    local = stack(tmp_path)
    with pytest.raises(Problem, match="cannot start speed: kafka-0, serving not running") as caught:
        start_waves(local.select(["postgres", "speed"]), set())
    assert "lambdapipe up" in caught.value.hint


def test_no_marker_keeps_the_configured_node_count(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert with_kafka_nodes(settings, None).kafka.nodes == settings.kafka.nodes


def write_marker(settings: Settings, nodes: int) -> None:
    marker = settings.data_dir / "kafka" / "topology.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"nodes": nodes}))


def test_the_marker_tells_how_many_nodes_the_data_was_made_with(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    write_marker(settings, 3)
    assert with_kafka_nodes(settings, None).kafka.nodes == 3
    assert names(Stack(with_kafka_nodes(settings, None)).select(["kafka"])) == [
        "kafka-0",
        "kafka-1",
        "kafka-2",
    ]


def test_an_explicit_count_wins_over_the_marker(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    write_marker(settings, 3)
    assert with_kafka_nodes(settings, 1).kafka.nodes == 1


@pytest.mark.parametrize("nodes", [0, 2, 5])
def test_only_one_or_three_nodes(tmp_path: Path, nodes: int) -> None:
    with pytest.raises(Problem, match=f"must be 1 or 3, not {nodes}"):
        with_kafka_nodes(Settings(home=tmp_path), nodes)


def test_a_marker_with_a_bad_count_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    write_marker(settings, 2)
    with pytest.raises(Problem, match="must be 1 or 3"):
        with_kafka_nodes(settings, None)
