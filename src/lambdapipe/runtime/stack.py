"""The local stack: start services in dependency order, wait for readiness, report, stop."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from lambdapipe.errors import Problem
from lambdapipe.resources import Resources
from lambdapipe.runtime.process import port_owner, tail
from lambdapipe.runtime.services.base import Service
from lambdapipe.runtime.services.connect import KafkaConnect
from lambdapipe.runtime.services.kafka import KafkaNode
from lambdapipe.runtime.services.pipeline import ArchiverProcess, ServingProcess, SpeedProcess
from lambdapipe.runtime.services.postgres import Postgres
from lambdapipe.runtime.services.prometheus import Prometheus
from lambdapipe.runtime.services.registry import ApicurioRegistry
from lambdapipe.runtime.services.s3proxy import S3Proxy
from lambdapipe.settings import Settings

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | starting (alive but not answering)
    ports: list[int]
    pid: int | None
    rss_mb: float | None
    uptime_s: float | None


def services(settings: Settings) -> list[Service]:
    """Every local service, in start order."""
    return [
        Postgres(settings),
        S3Proxy(settings),
        *(KafkaNode(settings, i) for i in range(settings.kafka.nodes)),
        KafkaConnect(settings),
        ApicurioRegistry(settings),
        Prometheus(settings),
        ServingProcess(settings),
        SpeedProcess(settings),
        ArchiverProcess(settings),
    ]


class Stack:
    def __init__(self, settings: Settings) -> None:
        if not Resources(settings).manages_local_stack:
            raise Problem(
                f"profile {settings.profile!r} uses external services; "
                "`up`/`down` only manage the local stack",
                hint="unset LAMBDAPIPE_PROFILE (or set it to local)",
            )
        self.settings = settings
        self.services = services(settings)

    def select(self, names: Iterable[str] | None, optional: bool = False) -> list[Service]:
        """The named services, or every service (optional ones only when `optional`)."""
        if names is None:
            return [s for s in self.services if optional or not s.optional]
        wanted = set(names)
        if "kafka" in wanted:
            wanted |= {s.name for s in self.services if isinstance(s, KafkaNode)}
        unknown = wanted - {s.name for s in self.services} - {"kafka"}
        if unknown:
            raise Problem(f"unknown service(s): {', '.join(sorted(unknown))}")
        return [s for s in self.services if s.name in wanted]

    def up(self, names: Iterable[str] | None = None, progress: Progress = print) -> list[str]:
        """Start what is not running; return the names started. Idempotent."""
        for directory in (self.settings.log_dir, self.settings.run_dir, self.settings.conf_dir):
            directory.mkdir(parents=True, exist_ok=True)
        todo = self.select(names)
        running = {s.name for s in todo if s.process.info() is not None}
        for service in sorted((s for s in todo if s.name in running), key=lambda s: s.name):
            # an earlier `up` may have failed between this service's start and its bootstrap
            service.bootstrap()
            progress(f"{service.name}: already running")
        pending = [s for s in todo if s.name not in running]
        for service in pending:
            self._check_ports(service)
        started: list[str] = []
        ready = set(running) | {
            s.name for s in self.services if s not in todo and s.process.info() is not None
        }
        # start every service whose dependencies are ready, in waves, then wait for the wave
        for wave in start_waves(pending, ready):
            for service in wave:
                service.start()
                progress(f"{service.name}: starting")
            for service in wave:
                began = time.monotonic()
                self._wait_ready(service)
                service.bootstrap()
                progress(f"{service.name}: ready in {time.monotonic() - began:.1f}s")
                started.append(service.name)
        return started

    def _check_ports(self, service: Service) -> None:
        for port in service.ports:
            owner = port_owner(port)
            # a process that just died may hold its sockets a moment longer while it is reaped
            deadline = time.monotonic() + 5
            while owner is not None and time.monotonic() < deadline:
                time.sleep(0.2)
                owner = port_owner(port)
            if owner is not None:
                raise Problem(
                    f"{service.name}: port {port} is already in use by {owner}",
                    hint="stop that process, or move lambdapipe's ports with "
                    "LAMBDAPIPE_PORT_OFFSET=<n> (or the service's own LAMBDAPIPE_*__PORT)",
                )

    def _wait_ready(self, service: Service) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout_s
        while time.monotonic() < deadline:
            if service.process.exited():
                raise Problem(
                    f"{service.name} exited while starting (log: {service.log_file})",
                    log_tail=tail(service.log_file),
                )
            if service.ready():
                return
            time.sleep(0.25)
        raise Problem(
            f"{service.name} did not become ready within {self.settings.ready_timeout_s:.0f}s "
            f"(log: {service.log_file})",
            hint="the service is left running for inspection; `lambdapipe down` stops it",
            log_tail=tail(service.log_file),
        )

    def down(
        self, names: Iterable[str] | None = None, purge: bool = False, progress: Progress = print
    ) -> list[str]:
        """Stop services in reverse order; with purge, delete their data and logs too."""
        stopped = []
        chosen = self.select(names, optional=True)
        # stop wave by wave, dependants first; inside a wave in parallel (the Kafka nodes of a
        # cluster must go together: the last one alone waits for a quorum that has left)
        for wave in reversed(self._waves(chosen)):
            signalled = [(s, s.process.signal(s.stop_signal, s.signal_group)) for s in wave]
            for service, info in signalled:
                if info is not None:
                    service.process.wait_stopped(info, service.stop_timeout_s)
                    progress(f"{service.name}: stopped")
                    stopped.append(service.name)
        if purge:
            if names is not None:
                raise Problem("--purge removes the whole stack's data; give no service")
            for directory in (
                self.settings.data_dir,
                self.settings.log_dir,
                self.settings.conf_dir,
                self.settings.run_dir,
            ):
                shutil.rmtree(directory, ignore_errors=True)
            progress(f"purged data, logs and configuration under {self.settings.home}")
        return stopped

    def _waves(self, chosen: list[Service]) -> list[list[Service]]:
        """Services grouped by dependency depth: each wave needs only earlier waves."""
        depth: dict[str, int] = {}
        for service in self.services:  # start order: dependencies come first
            depth[service.name] = 1 + max((depth[d] for d in service.depends_on), default=-1)
        waves: dict[int, list[Service]] = {}
        for service in chosen:
            waves.setdefault(depth[service.name], []).append(service)
        return [waves[d] for d in sorted(waves)]

    def status(self) -> list[ServiceStatus]:
        result = []
        now = time.time()
        for service in self.services:
            info = service.process.info()
            if info is None:
                state = "stopped"
            else:
                try:
                    state = "running" if service.ready() else "starting"
                except Problem:
                    state = "unhealthy"
            result.append(
                ServiceStatus(
                    name=service.name,
                    state=state,
                    ports=service.ports,
                    pid=info.pid if info else None,
                    rss_mb=round(info.rss_bytes / 2**20, 1) if info else None,
                    uptime_s=round(now - info.started_at, 1) if info else None,
                )
            )
        return result


def start_waves(pending: list[Service], ready: Iterable[str]) -> list[list[Service]]:
    """The waves `up` starts `pending` in: each wave needs only what is ready or started before.

    Planned before anything starts, so a service whose dependency is down and not being started
    is refused at once, not after the rest of the stack came up.
    """
    available = set(ready)
    waves: list[list[Service]] = []
    while pending:
        wave = [s for s in pending if set(s.depends_on) <= available]
        if not wave:
            missing = sorted(
                {d for s in pending for d in s.depends_on} - available - _names(pending)
            )
            raise Problem(
                f"cannot start {', '.join(s.name for s in pending)}: "
                f"{', '.join(missing) or 'their dependencies'} not running",
                hint="start them too: `lambdapipe up` (or `--only` with their names)",
            )
        waves.append(wave)
        available |= _names(wave)
        pending = [s for s in pending if s not in wave]
    return waves


def _names(chosen: list[Service]) -> set[str]:
    return {s.name for s in chosen}


def status_dicts(statuses: list[ServiceStatus]) -> list[dict[str, object]]:
    return [asdict(s) for s in statuses]


def with_kafka_nodes(settings: Settings, nodes: int | None) -> Settings:
    """Settings for the requested node count, or for the count the local data was made with."""
    if nodes is None:
        marker = settings.data_dir / "kafka" / "topology.json"
        if not marker.exists():
            return settings
        nodes = int(json.loads(marker.read_text())["nodes"])
    if nodes not in (1, 3):
        raise Problem(f"--kafka-nodes must be 1 or 3, not {nodes}")
    kafka = settings.kafka.model_copy(update={"nodes": nodes})
    return settings.model_copy(update={"kafka": kafka})
