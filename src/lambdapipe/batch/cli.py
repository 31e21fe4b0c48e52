"""`lambdapipe batch run`: recompute days exactly from the lake into the curated tables."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from lambdapipe.errors import Problem
from lambdapipe.settings import get_settings

if TYPE_CHECKING:
    from lambdapipe.batch.job import BatchRun

app = typer.Typer(
    help="The batch layer: each day recomputed exactly from the lake.", no_args_is_help=True
)
console = Console()


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Problem(f"{option} {text!r} is not a day", hint="e.g. 2026-03-02") from None


def _hours(text: str) -> timedelta:
    from lambdapipe.generator.clock import parse_duration

    try:
        return timedelta(microseconds=parse_duration(text))
    except ValueError:
        raise Problem(f"--horizon {text!r} is not a duration", hint="e.g. 6h, 90m") from None


@app.command("run")
def run(
    day: Annotated[str | None, typer.Option("--date", help="the day to recompute (UTC)")] = None,
    first: Annotated[str | None, typer.Option("--from", help="backfill: first day")] = None,
    last: Annotated[str | None, typer.Option("--to", help="backfill: last day")] = None,
    lookback_days: Annotated[
        int, typer.Option(help="read records that arrived up to D + 1 + this many days")
    ] = 2,
    horizon: Annotated[
        str, typer.Option(help="how far into the next day sessions are followed to close")
    ] = "6h",
    driver_memory: Annotated[str | None, typer.Option(help="Spark driver heap, e.g. 1g")] = None,
    warehouse: Annotated[
        bool, typer.Option(help="load the warehouse's RAW tables and build them with dbt")
    ] = True,
    publish: Annotated[
        bool, typer.Option(help="then publish the days into the serving store (batch publish)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
) -> None:
    """Recompute each day from the raw tables; replace its rows in the curated tables."""
    from lambdapipe.batch.job import main as run_days  # PySpark loads only here

    days = _days(day, first, last)
    if lookback_days < 0:
        raise Problem("--lookback-days must be 0 or more")
    # with --json, stdout carries the document alone: progress goes to stderr
    shown = Console(stderr=True) if as_json else console
    with shown.status("batch starting") as status:

        def progress(line: str) -> None:
            status.update(line)
            if not shown.is_terminal:  # a log file: each step with its time
                shown.log(line)

        result = run_days(
            get_settings(),
            days,
            lookback_days=lookback_days,
            horizon=_hours(horizon),
            driver_memory=driver_memory,
            progress=progress,
            warehouse=warehouse,
        )
    publications = _publish(days, False, shown) if publish else None
    if as_json:
        document = summary_dict(result)
        if publications is not None:
            document["publications"] = publications
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print(result)
        if publications is not None:
            _print_publications(publications)


def _days(day: str | None, first: str | None, last: str | None) -> list[date]:
    from lambdapipe.batch.job import days_between

    one, start, end = _day(day, "--date"), _day(first, "--from"), _day(last, "--to")
    if (one is None) == (start is None and end is None) or (start is None) != (end is None):
        raise Problem("give --date D, or --from A --to B", hint="see --help")
    return [one] if one is not None else days_between(start, end)  # type: ignore[arg-type]


def _publish(days: list[date], force: bool, shown: Console) -> list[dict[str, object]]:
    from lambdapipe.batch.publish import publish as publish_days
    from lambdapipe.resources import Resources
    from lambdapipe.serving.store import StoreError

    settings = get_settings()
    resources = Resources(settings)
    try:
        with shown.status("publishing") as status, resources.store() as store:
            done = publish_days(settings, store, days, force=force, progress=status.update)
    except StoreError as exc:
        raise Problem(
            f"publishing into the serving store at {settings.serving.store_url} failed: {exc}",
            hint="start the serve process (`lambdapipe up --only serving` or `lambdapipe serve`); "
            "the days published before the failure stay published",
        ) from exc
    return [
        {
            "day": p.day.isoformat(),
            "run_id": p.run_id,
            "published": p.published,
            "previous_run": p.previous_run,
            "rows": p.rows,
        }
        for p in done
    ]


def _print_publications(publications: list[dict[str, object]]) -> None:
    table = Table(title="batch publication into the serving store")
    for column in ("day", "run", "", "events", "sessions", "transactions"):
        table.add_column(
            column, justify="right" if column in ("events", "sessions", "transactions") else "left"
        )
    for p in publications:
        rows = cast("dict[str, int]", p["rows"])
        what = "published" if p["published"] else "[yellow]already published: nothing to do[/]"
        table.add_row(
            str(p["day"]),
            str(p["run_id"]),
            what,
            *(
                f"{rows[name]:,}" if name in rows else ""
                for name in ("user_events", "user_sessions", "transactions")
            ),
        )
    console.print(table)


@app.command("publish")
def publish(
    day: Annotated[str | None, typer.Option("--date", help="the day to publish (UTC)")] = None,
    first: Annotated[str | None, typer.Option("--from", help="first day")] = None,
    last: Annotated[str | None, typer.Option("--to", help="last day")] = None,
    force: Annotated[bool, typer.Option(help="publish even a run already published")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
) -> None:
    """Publish curated days into the serving store's batch tables; move the batch watermark."""
    shown = Console(stderr=True) if as_json else console
    publications = _publish(_days(day, first, last), force, shown)
    if as_json:
        sys.stdout.write(json.dumps({"publications": publications}, indent=2) + "\n")
    else:
        _print_publications(publications)


def summary_dict(result: BatchRun) -> dict[str, object]:
    """The run's summary as plain data."""
    dbt = result.dbt
    return {
        "batch_id": result.batch_id,
        "users_history_rows": result.users_history_rows,
        "phases_s": {name: round(s, 2) for name, s in result.phases.items()},
        "raw_loaded": {d.isoformat(): rows for d, rows in result.raw_loaded.items()},
        "dbt": None
        if dbt is None
        else {
            "success": dbt.success,
            "nodes": [
                {"name": r.name, "kind": r.kind, "status": r.status, "rows": r.rows}
                for r in dbt.results
            ],
        },
        "days": [
            {
                "day": d.day.isoformat(),
                "raw_records": d.raw_records,
                "rows": d.rows,
                "dead_letters": d.dead_letters,
                "duplicates": d.duplicates,
                "sessions_cut_at_horizon": d.sessions_cut,
                "conserved": d.conserved,
                "seconds": round(d.seconds, 2),
            }
            for d in result.days
        ],
    }


def _print(result: BatchRun) -> None:
    table = Table(title="batch run: curated rows per day")
    columns = ("day", "raw", "events", "transactions", "sessions", "dead letters", "duplicates")
    for column in (*columns, "conserved", "seconds"):
        table.add_column(column, justify="left" if column == "day" else "right")
    for d in result.days:
        r = d.rows
        table.add_row(
            d.day.isoformat(),
            f"{d.raw_records:,}",
            f"{r['events']:,}",
            f"{r['transactions']:,}",
            f"{r['sessions']:,}",
            f"{r['dead_letters']:,}",
            f"{d.duplicates:,}",
            "[green]yes[/]" if d.conserved else "[red]no[/]",
            f"{d.seconds:.1f}",
        )
    console.print(table)
    reasons: dict[str, int] = {}
    for d in result.days:
        for reason, n in d.dead_letters.items():
            reasons[reason] = reasons.get(reason, 0) + n
    if reasons:
        console.print(
            "dead letters by reason: " + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items()))
        )
    cut = sum(d.sessions_cut for d in result.days)
    if cut:
        console.print(f"[yellow]{cut} sessions still open at the horizon were cut there[/]")
    console.print(f"users history: {result.users_history_rows:,} versions")
    if result.raw_loaded:
        loads = Table(title=f"warehouse RAW loaded ({result.batch_id})")
        names = sorted({t for rows in result.raw_loaded.values() for t in rows})
        for column in ("day", *names):
            loads.add_column(column, justify="left" if column == "day" else "right")
        for moment, loaded in result.raw_loaded.items():
            loads.add_row(moment.isoformat(), *(f"{loaded.get(t, 0):,}" for t in names))
        console.print(loads)
    if result.dbt is not None:
        nodes = Table(title="dbt build")
        for column in ("node", "kind", "status", "rows", "seconds"):
            nodes.add_column(column, justify="right" if column in ("rows", "seconds") else "left")
        for node in result.dbt.results:
            colour = "red" if node.failed else "green"
            count = "" if node.rows is None else f"{node.rows:,}"
            status = f"[{colour}]{node.status}[/]"
            nodes.add_row(node.name, node.kind, status, count, f"{node.seconds:.2f}")
        console.print(nodes)
