"""The profile picks every backend in one map; a setting may override one resource."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lambdapipe.errors import Problem
from lambdapipe.resources import DEPLOYMENTS, Resources
from lambdapipe.serving.http import HttpStore
from lambdapipe.settings import Settings
from lambdapipe.topics import declared_topics

OPEN_OWNER = """
import sys
from lambdapipe.resources import Resources
from lambdapipe.settings import Settings
with Resources(Settings(home=sys.argv[1])).store(owner=True) as store:
    print(type(store).__name__, store.ping())
"""


def test_every_profile_has_a_deployment() -> None:
    assert set(DEPLOYMENTS) == {"local", "cluster"}


def test_local_profile_embeds_the_store_in_the_serve_process(tmp_path: Path) -> None:
    resources = Resources(Settings(home=tmp_path))
    assert resources.store_backend == "embedded"
    assert resources.serves_store_endpoint
    assert resources.manages_local_stack
    assert resources.spark_master == "local[*]"
    client = resources.store()
    assert isinstance(client, HttpStore)
    assert client.url == Settings(home=tmp_path).serving.store_url
    client.close()
    # chdb opens one data directory per process: the owner's engine is opened in a child
    owner = subprocess.run(
        [sys.executable, "-c", OPEN_OWNER, str(tmp_path)], capture_output=True, text=True
    )
    assert owner.stdout.split() == ["EmbeddedStore", "True"], owner.stderr[-2000:]


def test_cluster_profile_talks_to_servers_and_manages_nothing(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        profile="cluster",
        serving={"server_url": "http://clickhouse:8123/"},  # type: ignore[arg-type]
    )
    resources = Resources(settings)
    assert resources.store_backend == "server"
    assert not resources.serves_store_endpoint
    assert not resources.manages_local_stack
    with resources.store(owner=True) as store:  # even the serve process: no embedded engine
        assert isinstance(store, HttpStore)
        assert store.url == "http://clickhouse:8123/"


def test_cluster_profile_without_a_spark_master_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(Problem, match="no Spark master") as error:
        _ = Resources(Settings(home=tmp_path, profile="cluster")).spark_master
    assert "LAMBDAPIPE_SPEED__MASTER" in error.value.hint


def test_a_setting_overrides_the_profiles_store(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, serving={"backend": "server"})  # type: ignore[arg-type]
    assert Resources(settings).store_backend == "server"
    assert Resources(settings).manages_local_stack


@pytest.mark.parametrize(
    ("nodes", "configured", "expected"),
    [(1, {}, (1, 1)), (3, {}, (3, 2)), (1, {"replication_factor": 3}, (3, 2))],
)
def test_topics_replicate_as_settings_say(
    tmp_path: Path, nodes: int, configured: dict[str, int], expected: tuple[int, int]
) -> None:
    settings = Settings(home=tmp_path, kafka={"nodes": nodes, **configured})  # type: ignore[arg-type]
    assert settings.kafka.replication == expected
    topics = declared_topics(settings)
    assert [t.name for t in topics] == ["events", "transactions", "events.dlq", "events.accepted"]
    assert {t.config["min.insync.replicas"] for t in topics} == {str(expected[1])}
    assert {t.partitions for t in topics} == {settings.kafka.partitions}
