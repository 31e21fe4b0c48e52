"""Platform benchmark: `make setup` from scratch, `lambdapipe up` time, idle stack memory.

    uv run python bench/bench_stack.py [--skip-setup]

Baseline measured in the same run: the start-up of a bare JVM (`java -version`), the floor under
every JVM service's start. Results: JSON on stdout and in bench/results/stack.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> float:
    began = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - began


def fresh_setup_seconds(work: Path) -> float:
    """Clone the repo and run setup with empty Maven and uv caches (every artifact downloaded).

    Debian packages are taken as installed: apt cannot be undone and redone here.
    """
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {
        **{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
        "MAVEN_REPO_LOCAL": str(work / "m2"),
        "UV_CACHE_DIR": str(work / "uv-cache"),
    }
    seconds = timed(["bash", "scripts/setup.sh"], env=env, cwd=clone)
    shutil.rmtree(clone, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-setup", action="store_true", help="skip the fresh-setup timing")
    parser.add_argument("--settle", type=float, default=30.0, help="idle seconds before measuring")
    args = parser.parse_args()

    results: dict[str, object] = {}
    results["baseline_jvm_start_s"] = round(timed(["java", "-version"]), 2)
    with tempfile.TemporaryDirectory(prefix="lambdapipe-bench-") as tmp:
        if not args.skip_setup:
            results["fresh_setup_s"] = round(fresh_setup_seconds(Path(tmp)), 1)
            print(f"fresh setup: {results['fresh_setup_s']} s", file=sys.stderr)
    results["second_setup_s"] = round(timed(["bash", "scripts/setup.sh"]), 1)

    home = REPO / ".lambdapipe" / "bench-stack"
    shutil.rmtree(home, ignore_errors=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LAMBDAPIPE_")},
        "LAMBDAPIPE_HOME": str(home),
        "LAMBDAPIPE_LIB_HOME": str(REPO / ".lambdapipe" / "lib"),
        "LAMBDAPIPE_PORT_OFFSET": "26000",
    }
    cli = [sys.executable, "-m", "lambdapipe.cli"]
    try:
        results["up_first_s"] = round(timed([*cli, "up"], env=env), 1)
        time.sleep(args.settle)
        status = json.loads(
            subprocess.run(
                [*cli, "status", "--json"], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        results["idle_memory_mib"] = {s["name"]: s["rss_mb"] for s in status}
        results["idle_memory_total_gib"] = round(sum(s["rss_mb"] for s in status) / 1024, 2)
        results["down_s"] = round(timed([*cli, "down"], env=env), 1)
        results["up_restart_s"] = round(timed([*cli, "up"], env=env), 1)
    finally:
        subprocess.run([*cli, "down", "--purge"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stack.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
