"""`lambdapipe demo`: the live terminal view and the one-screen summary."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from lambdapipe.demo.observe import Snapshot
from lambdapipe.demo.run import DEFAULT_FAULTS, DemoConfig, DemoResult, run_demo
from lambdapipe.demo.traffic import ChurnReport
from lambdapipe.settings import Settings, get_settings, secrets_file

app = typer.Typer(help="Run the whole real-time pipeline on this machine and watch it.")
console = Console()


@app.callback(invoke_without_command=True)
def demo(
    minutes: Annotated[float, typer.Option(help="how long to generate traffic")] = 5.0,
    rate: Annotated[float, typer.Option(help="events per second")] = 2_000.0,
    users: Annotated[int, typer.Option(help="users in the population")] = 10_000,
    products: Annotated[int, typer.Option(help="products in the catalogue")] = 1_000,
    faults: Annotated[
        str, typer.Option(help="fault spec (see docs/generator.md)")
    ] = DEFAULT_FAULTS,
    churn_rate: Annotated[
        float, typer.Option(help="dimension changes per second while traffic runs (0 = none)")
    ] = DemoConfig.churn_rate,
    stop: Annotated[bool, typer.Option("--stop", help="stop the stack at the end")] = False,
) -> None:
    """Set up, start everything, generate traffic with churn and faults, watch it live."""
    settings = get_settings()
    config = DemoConfig(
        minutes=minutes, rate=rate, users=users, products=products, faults=faults,
        churn_rate=churn_rate, keep_running=not stop,
    )  # fmt: skip
    dashboard = f"{settings.serving.endpoint}/"
    sign_in = sign_in_hint(settings)
    last = {"at": 0.0, "done": 0}

    with Live(console=console, refresh_per_second=2, transient=False) as live:

        def say(line: str) -> None:
            live.console.print(line)

        def watch(elapsed: float, produced: int, snap: Snapshot) -> None:
            processed = snap.accepted_events + snap.dead_lettered
            rate_now = (processed - last["done"]) / max(elapsed - last["at"], 1e-9)
            last.update(at=elapsed, done=processed)
            table = Table.grid(padding=(0, 3))
            for column in ("", ""):
                table.add_column(column)
            table.add_row("elapsed", f"{elapsed:,.0f} s")
            table.add_row(
                "produced (valid events)", f"{produced:,}  ({produced / max(elapsed, 1e-9):,.0f}/s)"
            )
            table.add_row("processed", f"{processed:,}  ({max(rate_now, 0):,.0f}/s)")
            table.add_row("lag", f"{max(produced - snap.accepted_events, 0):,}")
            table.add_row("dead letters", f"{snap.dead_lettered:,}")
            freshness = f"{snap.freshness_s:.1f} s" if snap.freshness_s is not None else "-"
            table.add_row("freshness", freshness)
            table.add_row("dashboard", dashboard)
            table.add_row("", sign_in)
            live.update(Panel(table, title="lambdapipe demo (Ctrl-C to stop)", border_style="cyan"))

        result = run_demo(settings, config, say, watch)
    console.print(summary(result, dashboard, config.keep_running, sign_in))


def sign_in_hint(settings: Settings) -> str:
    """How to sign in to the dashboard, without the token itself (the output may be logged)."""
    where = secrets_file(settings.home)
    place = f"in {where}" if where.exists() else "in the environment"
    return f"sign in with the API token: LAMBDAPIPE_SERVING__API_TOKEN {place}"


def summary(result: DemoResult, dashboard: str, running: bool, sign_in: str = "") -> Group:
    """The one-screen summary at the end."""
    produced = result.produced
    counts = Table(title="what happened", show_header=False)
    counts.add_column()
    counts.add_column(justify="right")
    if produced is not None:
        counts.add_row("records produced (with faults)", f"{produced.records:,}")
        counts.add_row("valid events produced", f"{produced.valid_events:,}")
        counts.add_row("transactions produced", f"{produced.transactions:,}")
        counts.add_row("duplicates injected (dropped)", f"{len(produced.truth.duplicates):,}")
    counts.add_row("events accepted", f"{result.final.accepted_events:,}")
    for reason, n in sorted(result.final.dead_letters.items()):
        counts.add_row(f"dead-lettered: {reason}", f"{n:,}")
    counts.add_row("dimension changes (churn)", churn_line(result.churn))
    p50, p95 = result.freshness.get("p50"), result.freshness.get("p95")
    counts.add_row("freshness p50 / p95 (event time to written)", f"{_s(p50)} / {_s(p95)}")

    funnel = Table(title="funnel (closed sessions)")
    for column in ("step", "sessions", "step rate"):
        funnel.add_column(column, justify="right")
    for step in result.funnel.get("steps", []):
        funnel.add_row(step["step"], f"{step['sessions']:,}", f"{step['step_rate']:.1%}")

    tiers = Table(title="revenue by tier")
    for column in ("tier", "sessions", "revenue"):
        tiers.add_column(column, justify="right")
    for row in result.tiers:
        tiers.add_row(
            str(row.get("user_tier")),
            f"{row.get('sessions', 0):,}",
            f"{row.get('revenue', 0):,.2f}",
        )

    after = (
        f"The stack is still running: explore {dashboard} ({sign_in}), `lambdapipe status`, "
        '`lambdapipe query sql "SELECT ..."`; stop it with `lambdapipe down`.'
        if running
        else "The stack is stopped (`lambdapipe up` starts it again; data is kept)."
    )
    return Group(counts, funnel, tiers, after)


def churn_line(report: ChurnReport) -> str:
    """The churn count, and plainly why there is none when churn did not run to its end."""
    if not report.ran:
        return f"{report.changes:,} ({report.state})"
    return f"{report.changes:,}" if report.changes else "0 (ran, but committed no change)"


def _s(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "-"
