"""Supervised local processes: start detached with a pid file and a log file, stop cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from lambdapipe.errors import Problem

# Processes started by this Python process: kept so they are reaped when they exit (no
# zombies) and so Popen does not warn about a detached child it still sees running.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    rss_bytes: int
    started_at: float


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file ('' when there is none)."""
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def port_owner(port: int, host: str = "127.0.0.1") -> str | None:
    """Describe the process listening on host:port, or None when the port is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return None
        except OSError:
            pass
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            address = conn.laddr
            if conn.status == psutil.CONN_LISTEN and address and address[1] == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:80]})"
    return "another process"


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


class ManagedProcess:
    """One long-running process owned by lambdapipe, tracked by `<run_dir>/<name>.pid`."""

    def __init__(self, name: str, run_dir: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_file

    def info(self) -> ProcessInfo | None:
        """The live process, or None (a stale pid file is removed)."""
        if not self.pid_file.exists():
            return None
        try:
            pid = int(self.pid_file.read_text().split()[0])
            if pid in _children and _children[pid].poll() is not None:
                del _children[pid]
                raise psutil.NoSuchProcess(pid)
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(pid)
            rss = _resident(proc)
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += _resident(child)
            return ProcessInfo(pid=pid, rss_bytes=rss, started_at=proc.create_time())
        except (ValueError, psutil.Error):
            self.pid_file.unlink(missing_ok=True)
            return None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start detached (own session), stdout and stderr appended to the log file."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} lambdapipe start\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(  # noqa: S603
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(env or {})},
                    cwd=cwd,
                    start_new_session=True,
                    user=user,
                )
            except FileNotFoundError as exc:
                raise Problem(
                    f"{self.name}: cannot run {argv[0]}: not found",
                    hint="run `make setup` to install what is missing",
                ) from exc
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def exited(self) -> bool:
        return self.info() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0, group: bool = True) -> bool:
        """Signal the process (group), wait, then SIGKILL. Returns True if it was running."""
        info = self.signal(sig, group)
        if info is not None:
            self.wait_stopped(info, timeout_s)
        return info is not None

    def signal(self, sig: int, group: bool = True) -> ProcessInfo | None:
        """Send `sig` to the process group (or to its leader alone); the process signalled, or
        None if not running."""
        info = self.info()
        if info is not None:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(info.pid, sig)
                else:
                    os.kill(info.pid, sig)
        return info

    def wait_stopped(self, info: ProcessInfo, timeout_s: float) -> None:
        """Wait for the signalled process to exit; SIGKILL its group after `timeout_s`. Whatever
        of the group outlives its leader (a child it did not stop) gets SIGTERM."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not psutil.pid_exists(info.pid) or _is_zombie(info.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(info.pid, signal.SIGTERM)
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(info.pid, signal.SIGKILL)
            time.sleep(0.2)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """kill -9, as a crash would (for failure tests)."""
        info = self.info()
        if info is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(info.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while psutil.pid_exists(info.pid) and not _is_zombie(info.pid):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.pid_file.unlink(missing_ok=True)


def _resident(proc: psutil.Process) -> int:
    """Proportional set size where the OS reports it (shared pages are not counted twice)."""
    try:
        return int(proc.memory_full_info().pss)
    except (psutil.AccessDenied, AttributeError):
        return int(proc.memory_info().rss)


def _is_zombie(pid: int) -> bool:
    if pid in _children and _children[pid].poll() is not None:
        del _children[pid]
        return True
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True
