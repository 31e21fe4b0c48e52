"""`lambdapipe demo`: the live terminal view and the one-screen summary."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from lambdapipe.demo.batch import totals
from lambdapipe.demo.observe import Snapshot
from lambdapipe.demo.run import DEFAULT_FAULTS, DemoConfig, DemoResult, run_demo
from lambdapipe.demo.traffic import ChurnReport
from lambdapipe.serving.ddl import FUNNEL_STEPS
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
    batch: Annotated[
        bool, typer.Option(help="then batch run, publish and reconcile the traffic's day(s)")
    ] = DemoConfig.batch,
    stop: Annotated[bool, typer.Option("--stop", help="stop the stack at the end")] = False,
) -> None:
    """Set up, start everything, generate traffic with churn and faults, watch it live."""
    settings = get_settings()
    config = DemoConfig(
        minutes=minutes, rate=rate, users=users, products=products, faults=faults,
        churn_rate=churn_rate, keep_running=not stop, batch=batch,
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

    funnel = Table(title="realtime funnel (sessions the speed layer has closed)")
    for column in ("step", "sessions", "step rate"):
        funnel.add_column(column, justify="right")
    for step in result.funnel.get("steps", []):
        funnel.add_row(step["step"], f"{step['sessions']:,}", f"{step['step_rate']:.1%}")

    tiers = Table(title="realtime revenue by tier")
    for column in ("tier", "sessions", "revenue"):
        tiers.add_column(column, justify="right")
    for row in result.tiers:
        tiers.add_row(
            str(row.get("user_tier")),
            f"{row.get('sessions', 0):,}",
            f"{row.get('revenue', 0):,.2f}",
        )

    parts: list[RenderableType] = [counts, funnel, tiers]
    if result.batch is not None:
        parts += lambda_parts(result)
    after = (
        f"The stack is still running: explore {dashboard} ({sign_in}), `lambdapipe status`, "
        '`lambdapipe query sql "SELECT ..."`; stop it with `lambdapipe down`.'
        if running
        else "The stack is stopped (`lambdapipe up` starts it again; data is kept)."
    )
    return Group(*parts, after)


# what the summary compares, per metric total: (label, metric of reconcile, money)
COMPARED = (
    ("events", "events", False),
    ("transactions", "transactions_by_tier", False),
    ("revenue (completed)", "revenue", True),
    ("gross bookings", "gross_bookings", True),
    ("sessions", "sessions", False),
    *((f"funnel: {step}", f"funnel/{step}", False) for step in FUNNEL_STEPS),
    ("dead letters", "dead_letters", False),
)


def lambda_parts(result: DemoResult) -> list[RenderableType]:
    """Realtime vs batch vs truth per day with the drift by cause, the watermark, and what the
    merged API serves."""
    from lambdapipe.reconcile.compare import CAUSES

    half = result.batch
    if half is None:  # no batch half ran (`--no-batch`, or the speed layer did not catch up)
        return []
    parts: list[RenderableType] = []
    truth_dead = (
        sum(result.produced.truth.dead_letters.values()) if result.produced is not None else None
    )
    for reconciliation in half.reconciliations:
        day = reconciliation.day
        sums, truth = totals(reconciliation), half.truth_totals.get(day, {})
        table = Table(
            title=f"{day}: realtime (speed) vs batch vs truth — reconcile: {reconciliation.status}"
        )
        for column in ("metric", "realtime", "batch", "truth", "drift (realtime - batch) by cause"):
            table.add_column(
                column, justify="left" if column.startswith(("metric", "drift")) else "right"
            )
        table.add_column("unexplained", justify="right")
        for label, metric, money in COMPARED:
            row = sums.get(metric, {})
            if metric == "dead_letters":
                expected = Decimal(truth_dead) if truth_dead is not None else None
            else:
                expected = truth.get(metric, Decimal(0))
            causes = ", ".join(
                f"{cause} {_num(row[cause], money, signed=cause != 'tier')}"
                for cause in CAUSES
                if row.get(cause)
            )
            table.add_row(
                label,
                _num(row.get("speed", Decimal(0)), money),
                _num(row.get("batch", Decimal(0)), money),
                "-" if expected is None else _num(expected, money),
                causes or "-",
                _num(row.get("unexplained", Decimal(0)), money),
            )
        parts.append(table)
        for finding in reconciliation.findings:
            parts.append(f"[red]{finding}[/]")
        if reconciliation.status == "incomplete":
            parts.append(
                f"{day} is incomplete for reconcile: the speed layer has not passed its end "
                "(its newest event + its lateness); the day is compared as far as the traffic "
                "went, sessions still open in the speed layer count as `speed_incomplete`."
            )
    if half.not_published:
        parts.append(f"[yellow]Not published: {half.not_published}[/]")
    if result.produced is not None:
        faults = result.produced.truth
        parts.append(
            f"The truth dead letters are the rejected records only; the speed layer adds `late` "
            f"ones: {faults.late:,} late events and {len(faults.duplicates):,} duplicates sent "
            "beyond its lateness, which the batch counts once (dead letters: realtime - batch)."
        )
    watermark = half.watermark.isoformat() if half.watermark else "none"
    merged = result.merged_funnel
    served = Table(
        title=f"the merged API: batch up to the watermark {watermark}, realtime after "
        f"(sources: {', '.join(merged.get('sources', [])) or '-'})"
    )
    for column in ("answer", "value", "source"):
        served.add_column(column, justify="right" if column == "value" else "left")
    served.add_row("funnel: sessions", f"{merged.get('sessions', 0):,}", "")
    for step in merged.get("steps", []):
        served.add_row(f"funnel: {step['step']}", f"{step['sessions']:,}", "")
    for row in result.merged_revenue:
        served.add_row(
            f"revenue {str(row.get('bucket'))[:10]}",
            f"{Decimal(str(row.get('revenue', 0))):,.2f}",
            str(row.get("source", "")),
        )
    for row in result.merged_tiers:
        served.add_row(
            f"tier {row.get('user_tier')}: sessions / revenue",
            f"{row.get('sessions', 0):,} / {Decimal(str(row.get('revenue', 0))):,.2f}",
            "",
        )
    parts.append(served)
    return parts


def _num(value: Decimal, money: bool, signed: bool = False) -> str:
    text = f"{value:,.2f}" if money else f"{int(value):,}"
    return f"+{text}" if signed and value > 0 else text


def churn_line(report: ChurnReport) -> str:
    """The churn count, and plainly why there is none when churn did not run to its end."""
    if not report.ran:
        return f"{report.changes:,} ({report.state})"
    return f"{report.changes:,}" if report.changes else "0 (ran, but committed no change)"


def _s(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "-"
