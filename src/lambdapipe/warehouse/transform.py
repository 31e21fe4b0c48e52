"""Runs the dbt project (`dbt/`) in-process through `dbtRunner`, on the profile's warehouse.

The profiles.yml is generated from settings, with one target per warehouse backend of
`lambdapipe.resources` (duckdb, snowflake); the Snowflake password is read by dbt from an
environment variable (`env_var()`), set for the run only, never written in a file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from lambdapipe.errors import Problem
from lambdapipe.resources import Resources, warehouse_path
from lambdapipe.settings import Settings, WarehouseBackend
from lambdapipe.warehouse.raw import SCHEMA

PROFILE: Final = "lambdapipe"
# the name of the variable dbt reads the password from, not a password
PASSWORD_VARIABLE: Final = "LAMBDAPIPE_WAREHOUSE__SNOWFLAKE_PASSWORD"  # noqa: S105
# statuses of a node that ran as it should
PASSED: Final = frozenset({"success", "pass", "skipped_no_op", "no-op"})
FAILED: Final = frozenset({"error", "fail", "runtime error", "skipped"})


@dataclass(frozen=True)
class NodeResult:
    """What dbt did with one model, test, seed or snapshot."""

    name: str
    kind: str  # model, test, unit_test, source, ...
    status: str  # success, pass, warn, fail, error, skipped
    rows: int | None
    seconds: float
    message: str

    @property
    def failed(self) -> bool:
        return self.status in FAILED


@dataclass(frozen=True)
class DbtRun:
    """One dbt invocation: its command, whether it succeeded, and every node's result."""

    command: tuple[str, ...]
    success: bool
    results: tuple[NodeResult, ...]

    @property
    def failures(self) -> tuple[NodeResult, ...]:
        return tuple(r for r in self.results if r.failed)

    def result(self, name: str) -> NodeResult:
        """The result of the node `name` (a model's or a test's name)."""
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)


def project_dir(settings: Settings) -> Path:
    """The dbt project: `warehouse.dbt_project_dir`, else `dbt/` of the source tree."""
    if settings.warehouse.dbt_project_dir is not None:
        return settings.warehouse.dbt_project_dir.resolve()
    return Path(__file__).resolve().parents[3] / "dbt"


def state_dir(settings: Settings) -> Path:
    """Where dbt's generated profile, artifacts and logs live (under home)."""
    return (settings.data_dir / "warehouse" / "dbt").resolve()


def profiles(settings: Settings) -> dict[str, Any]:
    """profiles.yml: a target per warehouse backend, mirroring the resources map."""
    wh = settings.warehouse
    snowflake: dict[str, Any] = {
        "type": "snowflake",
        "account": wh.snowflake_account or "unset",
        "user": wh.snowflake_user or "unset",
        "password": f"{{{{ env_var('{PASSWORD_VARIABLE}', '') }}}}",
        "database": wh.snowflake_database,
        "schema": SCHEMA,
        "threads": wh.threads,
    }
    if wh.snowflake_warehouse:
        snowflake["warehouse"] = wh.snowflake_warehouse
    if wh.snowflake_role:
        snowflake["role"] = wh.snowflake_role
    if wh.snowflake_host:
        snowflake.update(
            host=wh.snowflake_host, port=wh.snowflake_port, protocol=wh.snowflake_protocol
        )
    duckdb = {
        "type": "duckdb",
        "path": str(warehouse_path(settings)),
        "schema": SCHEMA,
        "threads": wh.threads,
    }
    target: WarehouseBackend = Resources(settings).warehouse_backend
    return {
        PROFILE: {"target": target, "outputs": {"duckdb": duckdb, "snowflake": snowflake}},
    }


def write_profiles(settings: Settings) -> Path:
    """Write `<state>/profiles.yml` (no secret in it) and return its directory."""
    directory = state_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "profiles.yml"
    path.write_text(yaml.safe_dump(profiles(settings), sort_keys=False))
    return directory


@contextmanager
def _secret_environment(settings: Settings) -> Iterator[None]:
    """The Snowflake password in the environment for the run only (dbt's env_var reads it)."""
    before = os.environ.get(PASSWORD_VARIABLE)
    os.environ[PASSWORD_VARIABLE] = settings.warehouse.snowflake_password.get_secret_value()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PASSWORD_VARIABLE, None)
        else:
            os.environ[PASSWORD_VARIABLE] = before


def _node_result(result: Any) -> NodeResult:
    node = result.node
    response = getattr(result, "adapter_response", None) or {}
    rows = response.get("rows_affected") if isinstance(response, dict) else None
    status = str(getattr(result.status, "value", result.status))
    message = result.message or ""
    if getattr(result, "failures", None):
        message = message or f"{result.failures} failing rows"
    return NodeResult(
        name=node.name,
        kind=str(getattr(node.resource_type, "value", node.resource_type)),
        status=status,
        rows=rows if isinstance(rows, int) and rows >= 0 else None,
        seconds=float(result.execution_time or 0.0),
        message=str(message),
    )


def _close_log_files(directory: Path) -> None:
    """Close dbt's log file: the next invocation replaces its handler without closing it."""
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        for handler in list(logger.handlers):
            name = getattr(handler, "baseFilename", "")
            if name and Path(name).parent == directory:
                handler.close()
                logger.removeHandler(handler)


def run_dbt(settings: Settings, args: Sequence[str], *, check: bool = True) -> DbtRun:
    """Run `dbt <args>` on the profile's warehouse; a failing node is a Problem when `check`.

    The RAW schema must exist (any `Warehouse.connect()` creates it).
    """
    from dbt.cli.main import dbtRunner

    project = project_dir(settings)
    if not (project / "dbt_project.yml").exists():
        raise Problem(
            f"no dbt project at {project}",
            hint="set LAMBDAPIPE_WAREHOUSE__DBT_PROJECT_DIR to the project's directory",
        )
    profiles_dir = write_profiles(settings)
    state = state_dir(settings)
    command = (
        *args,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(state / "target"),
        "--log-path",
        str(state / "logs"),
    )
    with _secret_environment(settings):
        try:
            outcome = dbtRunner().invoke(["--no-use-colors", "--quiet", *command])
        finally:
            _close_log_files(state / "logs")
    if outcome.exception is not None:
        raise Problem(
            f"dbt {args[0]} could not run: {outcome.exception}",
            hint=f"dbt's log: {state / 'logs' / 'dbt.log'}",
        )
    raw_results = getattr(outcome.result, "results", None) or ()
    run = DbtRun(tuple(command), bool(outcome.success), tuple(map(_node_result, raw_results)))
    if check and (run.failures or not run.success):
        listed = "\n".join(
            f"  {r.kind} {r.name}: {r.status}{': ' + r.message if r.message else ''}"
            for r in run.failures
        )
        raise Problem(
            f"dbt {args[0]} failed on {len(run.failures)} node(s):\n{listed}",
            hint=f"dbt's log: {state / 'logs' / 'dbt.log'}",
        )
    return run


def build(settings: Settings, select: Sequence[str] = (), *, full_refresh: bool = False) -> DbtRun:
    """`dbt build`: every model, data test and unit test, in dependency order."""
    args = ["build"]
    if select:
        args += ["--select", *select]
    if full_refresh:
        args.append("--full-refresh")
    return run_dbt(settings, args)
