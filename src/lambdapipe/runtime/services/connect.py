"""Kafka Connect distributed worker with the Debezium PostgreSQL plugin on its plugin path."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

from lambdapipe.errors import Problem
from lambdapipe.ingest.cdc import DEBEZIUM_POSTGRES
from lambdapipe.runtime.services.base import (
    Service,
    classpath,
    java_binary,
    jmx_agent,
    jvm_options,
    log4j_properties,
    properties,
    write_if_changed,
)
from lambdapipe.settings import Settings

QUIET_LOGGERS = ("org.reflections", "org.apache.kafka.clients", "org.eclipse.jetty")


class KafkaConnect(Service):
    name = "connect"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.depends_on = tuple(f"kafka-{i}" for i in range(settings.kafka.nodes))

    @property
    def ports(self) -> list[int]:
        return [self.settings.connect.port, self.settings.prometheus.connect_exporter_port]

    @property
    def config_file(self) -> Path:
        return self.settings.conf_dir / "connect-distributed.properties"

    def prepare(self) -> None:
        c = self.settings.connect
        rf, _ = self.settings.kafka.replication
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_if_changed(
            self.config_file,
            properties(
                {
                    "bootstrap.servers": self.settings.kafka.bootstrap,
                    "group.id": c.group_id,
                    "listeners": f"http://{c.host}:{c.port}",
                    "rest.advertised.host.name": c.host,
                    "rest.advertised.port": c.port,
                    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
                    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                    "config.storage.topic": "_connect-configs",
                    "offset.storage.topic": "_connect-offsets",
                    "status.storage.topic": "_connect-status",
                    "config.storage.replication.factor": rf,
                    "offset.storage.replication.factor": rf,
                    "status.storage.replication.factor": rf,
                    "offset.flush.interval.ms": 5000,
                    "plugin.path": self.settings.lib_dir / "connect-plugins",
                    # only plugins found by their service manifests: fast, and Debezium has them
                    "plugin.discovery": "service_load",
                    "topic.creation.enable": "true",
                    "exactly.once.source.support": "disabled",
                }
            ),
        )
        write_if_changed(
            self.settings.conf_dir / "connect-log4j.properties",
            log4j_properties("INFO", QUIET_LOGGERS),
        )

    def argv(self) -> list[str]:
        conf = self.settings.conf_dir
        return [
            java_binary(),
            *jvm_options(self.settings.connect.heap),
            jmx_agent(self.settings, self.settings.prometheus.connect_exporter_port),
            f"-Dlog4j.configuration=file:{conf / 'connect-log4j.properties'}",
            "-cp",
            classpath(self.settings.lib_dir / "connect"),
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(self.config_file),
        ]

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(f"{self.settings.connect.endpoint}/connector-plugins", timeout=2)
            if response.status_code != 200:
                return False
            classes = {p["class"] for p in response.json()}
            if DEBEZIUM_POSTGRES not in classes:
                raise Problem(
                    "Kafka Connect started without the Debezium PostgreSQL plugin",
                    hint="run `make setup` (it installs .lambdapipe/lib/connect-plugins)",
                )
            return True
        return False
