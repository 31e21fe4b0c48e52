"""The interface every local service implements, and the helpers they share."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from lambdapipe.errors import Problem
from lambdapipe.runtime.process import ManagedProcess
from lambdapipe.settings import Settings


class Service(ABC):
    """A process `lambdapipe up` starts, probes for readiness and stops."""

    name: str
    depends_on: tuple[str, ...] = ()
    # optional services start only when named (`up --only …`, `demo`), and always stop on `down`
    optional: bool = False
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 30.0
    # the stop signal goes to the whole process group, unless the leader stops its children
    # itself (a Spark driver stops its queries, then its JVM: signalled too, the JVM would die
    # under the queries)
    signal_group: bool = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = ManagedProcess(self.name, settings.run_dir, self.log_file)

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """Ports this service listens on (all on 127.0.0.1)."""

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.ports[0]}"

    def prepare(self) -> None:  # noqa: B027 (an optional hook)
        """Write configuration and initialise the data directory (idempotent)."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line of the service's process."""

    def env(self) -> dict[str, str]:
        return {}

    def user(self) -> str | None:
        return None

    @abstractmethod
    def ready(self) -> bool:
        """A real readiness probe (answers a request), never a sleep."""

    def bootstrap(self) -> None:  # noqa: B027 (an optional hook)
        """Work to do once the service is ready (roles, topics, buckets); idempotent."""

    def start(self) -> int:
        self.prepare()
        return self.process.start(self.argv(), env=self.env(), cwd=self.data_dir, user=self.user())


def java_binary() -> str:
    """The `java` of JAVA_HOME or PATH; a clear error when it is missing or older than 17."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise Problem("Java 17+ is required and was not found", hint="run `make setup`")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr  # noqa: S603
    try:
        version = out.split('"')[1]
        major = int(version.split(".")[0])
    except (IndexError, ValueError):
        major = 0
    if major < 17:
        raise Problem(
            f"Java 17+ is required; {java} is {out.splitlines()[0] if out else 'unknown'}",
            hint="install a JDK 17 (make setup) or point JAVA_HOME at one",
        )
    return java


def jvm_options(heap: str) -> list[str]:
    """Small, explicit heaps: 2 cores and 24 GiB are shared by every service."""
    return [
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
    ]


def classpath(lib: Path) -> str:
    """The jars of one component directory; a clear error when setup has not run."""
    if not lib.is_dir() or not any(lib.glob("*.jar")):
        raise Problem(f"missing JVM artifacts in {lib}", hint="run `make setup`")
    return f"{lib}/*"


def jmx_agent(settings: Settings, port: int) -> str:
    jars = sorted((settings.lib_dir / "agents").glob("jmx_prometheus_javaagent-*.jar"))
    if not jars:
        raise Problem("missing the Prometheus JMX exporter agent", hint="run `make setup`")
    return f"-javaagent:{jars[-1]}=127.0.0.1:{port}:{settings.conf_dir / 'jmx-exporter.yaml'}"


def write_if_changed(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def properties(values: dict[str, object]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def http_ok(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


def log4j_properties(level: str, quiet: Sequence[str]) -> str:
    """log4j 1.x (reload4j) config writing to stdout, which the supervisor sends to the log."""
    lines = [
        f"log4j.rootLogger={level}, stdout",
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
        *(f"log4j.logger.{name}=WARN" for name in quiet),
    ]
    return "\n".join(lines) + "\n"
