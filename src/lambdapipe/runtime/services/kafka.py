"""Kafka in KRaft mode: one combined broker+controller node, or three (RF=3, min.insync=2)."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import uuid
from importlib.resources import files
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from lambdapipe.errors import Problem
from lambdapipe.runtime.process import port_open
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
from lambdapipe.topics import ensure_topics, quiet

# rules for brokers and Connect alike (JVM metrics are exported without rules)
JMX_EXPORTER_CONFIG = files("lambdapipe.runtime") / "conf" / "jmx-exporter.yaml"

QUIET_LOGGERS = ("kafka.log", "kafka.cluster", "org.apache.kafka.storage", "state.change.logger")


class KafkaNode(Service):
    """Node `index` of the local KRaft quorum."""

    def __init__(self, settings: Settings, index: int) -> None:
        self.index = index
        self.name = f"kafka-{index}"
        super().__init__(settings)

    @property
    def ports(self) -> list[int]:
        k = self.settings.kafka
        return [
            k.broker_port(self.index),
            k.controller_port(self.index),
            self.settings.prometheus.kafka_exporter_port + self.index,
        ]

    @property
    def kafka_root(self) -> Path:
        return self.settings.data_dir / "kafka"

    @property
    def config_file(self) -> Path:
        return self.settings.conf_dir / f"{self.name}.properties"

    def server_properties(self) -> dict[str, object]:
        k = self.settings.kafka
        rf, min_isr = k.replication
        voters = ",".join(f"{i}@{k.host}:{k.controller_port(i)}" for i in range(k.nodes))
        return {
            "process.roles": "broker,controller",
            "node.id": self.index,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{k.host}:{k.broker_port(self.index)},"
            f"CONTROLLER://{k.host}:{k.controller_port(self.index)}",
            "advertised.listeners": f"PLAINTEXT://{k.host}:{k.broker_port(self.index)}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": k.partitions,
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            # topics are declared by lambdapipe (and by Connect for CDC), never by a typo
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            # a laptop cluster: notice a dead broker in seconds (defaults: 9 s and 30 s)
            "broker.heartbeat.interval.ms": 1000,
            "broker.session.timeout.ms": 6000,
            "replica.lag.time.max.ms": 10000,
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.hours": 168,
            "log.segment.bytes": 256 * 1024 * 1024,
            "num.network.threads": 3,
            "num.io.threads": 4,
        }

    def prepare(self) -> None:
        self._check_topology()
        conf = self.settings.conf_dir
        write_if_changed(self.config_file, properties(self.server_properties()))
        write_if_changed(conf / "kafka-log4j.properties", log4j_properties("INFO", QUIET_LOGGERS))
        write_if_changed(conf / "jmx-exporter.yaml", JMX_EXPORTER_CONFIG.read_text())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()

    def _check_topology(self) -> None:
        """Refuse to reuse data formatted for a different node count."""
        marker = self.kafka_root / "topology.json"
        nodes = self.settings.kafka.nodes
        if marker.exists():
            formatted = json.loads(marker.read_text())["nodes"]
            if formatted != nodes:
                raise Problem(
                    f"the Kafka data was created for {formatted} node(s), not {nodes}",
                    hint="run `lambdapipe down --purge` first to change the number of nodes",
                )
        else:
            self.kafka_root.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"nodes": nodes}))

    def _cluster_id(self) -> str:
        path = self.kafka_root / "cluster.id"
        if not path.exists():
            raw = "-"  # as Kafka's own ids: one with a leading dash would read as an option
            while raw.startswith("-"):
                raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            path.write_text(raw)
        return path.read_text().strip()

    def _format_storage(self) -> None:
        result = subprocess.run(  # noqa: S603
            [
                java_binary(),
                "-Xmx256m",
                "-cp",
                classpath(self.settings.lib_dir / "kafka"),
                f"-Dlog4j.configuration=file:{self.settings.conf_dir / 'kafka-log4j.properties'}",
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={self._cluster_id()}",
                "-c",
                str(self.config_file),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()
            raise Problem(
                f"{self.name}: formatting the KRaft storage failed"
                + (f": {said[-1][:300]}" if said else ""),
                log_tail=(result.stdout + result.stderr)[-3000:],
            )

    def argv(self) -> list[str]:
        return [
            java_binary(),
            *jvm_options(self.settings.kafka.heap),
            jmx_agent(self.settings, self.ports[2]),
            f"-Dlog4j.configuration=file:{self.settings.conf_dir / 'kafka-log4j.properties'}",
            f"-Dkafka.logs.dir={self.settings.log_dir}",
            "-cp",
            classpath(self.settings.lib_dir / "kafka"),
            "kafka.Kafka",
            str(self.config_file),
        ]

    def ready(self) -> bool:
        """This node answers metadata requests as a registered broker."""
        k = self.settings.kafka
        if not port_open(k.broker_port(self.index)):
            return False
        client = AdminClient(quiet({"bootstrap.servers": f"{k.host}:{k.broker_port(self.index)}"}))
        with contextlib.suppress(KafkaException):
            brokers = client.list_topics(timeout=2).brokers
            return self.index in brokers
        return False

    def bootstrap(self) -> None:
        if self.index == self.settings.kafka.nodes - 1:
            ensure_topics(self.settings)
