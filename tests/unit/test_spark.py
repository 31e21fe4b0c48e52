"""The SparkSessions lambdapipe builds listen on loopback only, on one machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LIB = Path(__file__).resolve().parents[2] / ".lambdapipe" / "lib"
LISTENING = """
import sys, psutil
from lambdapipe.settings import Settings
from lambdapipe.spark import build_spark
spark = build_spark(Settings(home=sys.argv[1], lib_home=sys.argv[2]), "bind-check")
spark.range(10).count()
jvms = psutil.Process().children(recursive=True)
for conn in (c for p in jvms for c in p.net_connections("inet")):
    if conn.status == psutil.CONN_LISTEN:
        print("LISTEN", conn.laddr.ip)
spark.stop()
"""


def test_a_local_session_listens_on_loopback_only(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", LISTENING, str(tmp_path), str(LIB)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    addresses = {
        line.split()[1] for line in child.stdout.splitlines() if line.startswith("LISTEN ")
    }
    assert addresses, child.stderr[-3000:]
    assert addresses <= {"127.0.0.1", "::ffff:127.0.0.1"}, addresses


WORKER = """
import sys
from lambdapipe.settings import Settings
from lambdapipe.spark import build_spark
spark = build_spark(Settings(home=sys.argv[1], lib_home=sys.argv[2]), "worker-check")

def where(rows):
    import lambdapipe, sys
    for _ in rows:
        yield sys.executable

print("WORKER", spark.sparkContext.parallelize([1], 1).mapPartitions(where).collect()[0])
spark.stop()
"""


def test_python_workers_run_the_projects_interpreter_whatever_the_path(tmp_path: Path) -> None:
    """Started without the virtual environment on PATH (`.venv/bin/lambdapipe speed run`), the
    workers still run the project's interpreter, where lambdapipe is importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    child = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path), str(LIB)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    workers = [line.split()[1] for line in child.stdout.splitlines() if line.startswith("WORKER ")]
    assert workers == [sys.executable], child.stderr[-3000:]
