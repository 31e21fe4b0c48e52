"""lambdapipe's own long-running processes, supervised like the services: serving, speed and
the lake's archiver.

They are not part of the infrastructure `lambdapipe up` starts by default; `lambdapipe demo`
(or `lambdapipe up --only serving --only speed --only archiver`) starts them, and `down` stops
them too.
"""

from __future__ import annotations

import sys

from lambdapipe.runtime.services.base import Service, http_ok
from lambdapipe.settings import Settings, as_environment


class _LambdapipeProcess(Service):
    optional = True
    signal_group = False
    command: tuple[str, ...] = ()

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "lambdapipe.cli", *self.command]

    def env(self) -> dict[str, str]:
        # unbuffered: the log shows progress as it happens
        return {**as_environment(self.settings), "PYTHONUNBUFFERED": "1"}


class ServingProcess(_LambdapipeProcess):
    """`lambdapipe serve`: API, dashboard and the embedded ClickHouse store."""

    name = "serving"
    command = ("serve",)

    @property
    def ports(self) -> list[int]:
        return [self.settings.serving.port]

    def ready(self) -> bool:
        return http_ok(f"{self.settings.serving.endpoint}/health")


class SpeedProcess(_LambdapipeProcess):
    """`lambdapipe speed run`: the Spark streaming job (ready when its metrics answer)."""

    name = "speed"
    command = ("speed", "run")
    stop_timeout_s = 60.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        kafka = tuple(f"kafka-{i}" for i in range(settings.kafka.nodes))
        self.depends_on = (*kafka, "serving")

    @property
    def ports(self) -> list[int]:
        return [self.settings.speed.metrics_port]

    def ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.settings.speed.metrics_port}/metrics")


class ArchiverProcess(_LambdapipeProcess):
    """`lambdapipe lake archive`: Kafka into the lake's raw tables (ready when metrics answer)."""

    name = "archiver"
    command = ("lake", "archive")
    # a stop waits for the running commit to finish
    stop_timeout_s = 90.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        kafka = tuple(f"kafka-{i}" for i in range(settings.kafka.nodes))
        self.depends_on = (*kafka, "postgres", "s3proxy")

    @property
    def ports(self) -> list[int]:
        return [self.settings.lake.metrics_port]

    def ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.settings.lake.metrics_port}/metrics")
