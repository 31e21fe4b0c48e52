"""The SparkSessions lambdapipe builds listen on loopback only, on one machine."""

from __future__ import annotations

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
