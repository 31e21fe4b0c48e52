"""The Debezium connector's configuration, as production teams run it, without a stack."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lambdapipe.ingest import cdc
from lambdapipe.ingest.migrate import migrations
from lambdapipe.settings import Settings, ensure_local_secrets


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    env_file = ensure_local_secrets(tmp_path)
    return Settings(_env_file=env_file, home=tmp_path)  # type: ignore[call-arg]


def test_pgoutput_not_the_decoderbufs_default(settings: Settings) -> None:
    assert cdc.connector_config(settings)["plugin.name"] == "pgoutput"


def test_the_publication_is_filtered_to_the_captured_tables(settings: Settings) -> None:
    config = cdc.connector_config(settings)
    assert config["publication.name"] == cdc.PUBLICATION
    # made by the migrations for exactly these tables; Debezium may not widen it to all tables
    assert config["publication.autocreate.mode"] in ("disabled", "filtered")
    sql = "\n".join(m.sql for m in migrations())
    made = re.search(rf"CREATE PUBLICATION {cdc.PUBLICATION} FOR TABLE ([\w, ]+);", sql)
    assert made is not None
    published = {f"public.{t.strip()}" for t in made.group(1).split(",")}
    assert published == set(config["table.include.list"].split(",")) == set(cdc.TABLES)


def test_heartbeats_keep_the_idle_slot_moving(settings: Settings) -> None:
    config = cdc.connector_config(settings)
    assert int(config["heartbeat.interval.ms"]) > 0
    assert "debezium_heartbeat" in config["heartbeat.action.query"]
    assert "public.debezium_heartbeat" in cdc.TABLES


def test_topics_follow_the_configured_prefix(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDAPIPE_KAFKA__CDC_TOPIC_PREFIX", "acme")
    acme = Settings(home=settings.home)
    assert cdc.connector_config(acme)["topic.prefix"] == "acme"
    assert cdc.topic(acme, "users") == "acme.public.users"
    assert cdc.topic(settings, "users") == f"{settings.kafka.cdc_topic_prefix}.public.users"


def test_the_password_goes_to_connect_only_and_never_into_what_is_shown(
    settings: Settings,
) -> None:
    secret = settings.postgres.debezium_password.get_secret_value()
    config = cdc.connector_config(settings)
    assert [k for k, v in config.items() if v == secret] == ["database.password"]
    shown = json.dumps(cdc.redacted(config))
    assert secret not in shown
    assert cdc.redacted(config)["database.user"] == settings.postgres.debezium_user
    assert secret not in repr(settings)
