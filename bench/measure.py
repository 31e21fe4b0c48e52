"""What the benchmarks share: a private stack's settings and a measured subprocess (wall time,
CPU seconds of its process tree, peak RSS of each kind of process in it)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil

from lambdapipe.settings import Settings, ensure_local_secrets

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def bench_settings(name: str, port_offset: int) -> Settings:
    """Settings of a private stack under .lambdapipe/bench/<name>, every port shifted."""
    home = REPO / ".lambdapipe" / "bench" / name
    return Settings(
        _env_file=ensure_local_secrets(home),  # type: ignore[call-arg]
        home=home,
        lib_home=REPO / ".lambdapipe" / "lib",
        port_offset=port_offset,
    )


class Sampler(threading.Thread):
    """Peak RSS of each process of a tree, sampled every 0.5 s; CPU seconds at the end."""

    def __init__(self, root: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak: dict[str, float] = {}
        self.cpu: dict[int, float] = {}
        self.names: dict[int, str] = {}
        # (epoch seconds, process kind, RSS MiB) of every sample: peaks per phase
        self.timeline: list[tuple[float, str, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                members = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in members:
                try:
                    name = "jvm" if p.name() == "java" else "python"
                    rss = p.memory_info().rss / 2**20
                    times = p.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                self.names[p.pid] = name
                self.timeline.append((time.time(), name, rss))
                self.peak[name] = max(self.peak.get(name, 0.0), rss)
                self.cpu[p.pid] = times.user + times.system
            time.sleep(0.5)

    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def peak_rss_mib(self) -> dict[str, int]:
        return {k: round(v) for k, v in self.peak.items()}


def measured(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, Sampler, str]:
    """Run `argv` (stderr to `log`), sampled; returns wall seconds, the sampler and stdout."""
    began = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=out, text=True)
        sampler = Sampler(psutil.Process(process.pid))
        sampler.start()
        stdout, _ = process.communicate(timeout=3600)
    sampler.done.set()
    wall = time.monotonic() - began
    if process.returncode != 0:
        with log.open("a") as out:
            out.write(stdout)  # a JVM's own log lines may have gone to stdout
        raise SystemExit(f"{argv[3:6]} failed; see {log}")
    return wall, sampler, stdout
