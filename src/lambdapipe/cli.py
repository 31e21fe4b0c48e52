"""The `lambdapipe` command line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from lambdapipe.batch.cli import app as batch_app
from lambdapipe.contracts.cli import app as schemas_app
from lambdapipe.demo.cli import app as demo_app
from lambdapipe.errors import Problem
from lambdapipe.generator.cli import app as generator_app
from lambdapipe.ingest.cli import cdc_app, dims_app
from lambdapipe.lake.cli import app as lake_app
from lambdapipe.reconcile.cli import app as reconcile_app
from lambdapipe.runtime.stack import Stack, status_dicts, with_kafka_nodes
from lambdapipe.serving.cli import app as serving_app
from lambdapipe.settings import get_settings
from lambdapipe.speed.cli import app as speed_app
from lambdapipe.warehouse.cli import app as warehouse_app

app = typer.Typer(
    help="lambdapipe: a Lambda Architecture analytics pipeline for an online shop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _mount(sub: typer.Typer, name: str | None = None) -> None:
    """Mount a layer's sub-application (merged when unnamed), with friendly error handling."""
    apps = [sub, *(g.typer_instance for g in sub.registered_groups if g.typer_instance)]
    for each in apps:
        for command in each.registered_commands:
            if command.callback is not None:
                command.callback = friendly(command.callback)
        info = each.registered_callback
        if info is not None and info.callback is not None:
            info.callback = friendly(info.callback)
    app.add_typer(sub, name=name)


P = ParamSpec("P")
R = TypeVar("R")


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a Problem into a readable message and exit code 1, never a stack trace."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Problem as problem:
            err.print(f"[bold red]error:[/] {problem}")
            if problem.log_tail:
                err.print(Panel(problem.log_tail, title="last log lines", border_style="red"))
            if problem.hint:
                err.print(f"[yellow]what to do:[/] {problem.hint}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@friendly
def up(
    kafka_nodes: Annotated[
        int | None, typer.Option(help="Kafka nodes: 1, or 3 for RF=3 / min.insync=2")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="start only these services (and nothing else)")
    ] = None,
) -> None:
    """Start the local stack: PostgreSQL, Kafka, Connect+Debezium, Apicurio, S3Proxy, Prometheus."""
    settings = with_kafka_nodes(get_settings(), kafka_nodes)
    stack = Stack(settings)
    began = time.monotonic()
    started = stack.up(only, progress=lambda line: console.print(f"  {line}"))
    elapsed = time.monotonic() - began
    if started:
        console.print(f"[green]stack up[/] ({len(started)} started in {elapsed:.1f}s)")
    else:
        console.print(
            "[green]lambdapipe is already up[/]: nothing to start (see `lambdapipe status`)"
        )
    _print_status(stack)


@app.command()
@friendly
def down(
    purge: Annotated[
        bool, typer.Option(help="also delete all data, logs and configuration")
    ] = False,
) -> None:
    """Stop the local stack (data is kept unless --purge)."""
    stack = Stack(with_kafka_nodes(get_settings(), None))
    stopped = stack.down(purge=purge, progress=lambda line: console.print(f"  {line}"))
    console.print(f"[green]stack down[/] ({len(stopped)} stopped)")


@app.command()
@friendly
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Show each service's state, ports, pid and memory."""
    stack = Stack(with_kafka_nodes(get_settings(), None))
    if as_json:
        sys.stdout.write(json.dumps(status_dicts(stack.status()), indent=2) + "\n")
        return
    _print_status(stack)


def _print_status(stack: Stack) -> None:
    table = Table(title=f"lambdapipe stack ({stack.settings.home})")
    for column in ("service", "state", "ports", "pid", "memory", "uptime"):
        table.add_column(column)
    total = 0.0
    for s in stack.status():
        colour = {"running": "green", "stopped": "dim"}.get(s.state, "yellow")
        total += s.rss_mb or 0
        table.add_row(
            s.name,
            f"[{colour}]{s.state}[/]",
            ",".join(map(str, s.ports)),
            str(s.pid or "-"),
            f"{s.rss_mb:.0f} MiB" if s.rss_mb is not None else "-",
            f"{s.uptime_s:.0f}s" if s.uptime_s is not None else "-",
        )
    console.print(table)
    console.print(f"resident memory of the stack: {total / 1024:.2f} GiB")


_mount(demo_app, "demo")
_mount(schemas_app, "schemas")
_mount(generator_app, "generate")
_mount(dims_app, "dims")
_mount(cdc_app, "cdc")
_mount(serving_app)
_mount(speed_app, "speed")
_mount(lake_app, "lake")
_mount(warehouse_app, "warehouse")
_mount(batch_app, "batch")
_mount(reconcile_app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
