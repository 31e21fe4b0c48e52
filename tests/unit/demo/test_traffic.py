"""The demo without the stack: a failure in any thread ends in one clean line; reruns count anew."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from rich.console import Console

from lambdapipe.demo.cli import churn_line, summary
from lambdapipe.demo.observe import Snapshot
from lambdapipe.demo.run import DemoResult, next_run
from lambdapipe.demo.traffic import ChurnReport, run_traffic
from lambdapipe.errors import Problem
from lambdapipe.generator.run import Summary
from lambdapipe.ingest.churn import ChurnResult
from lambdapipe.settings import Settings


def generating(
    windows: int, fail_at: int | None = None
) -> Callable[[Callable[[int], None]], Summary]:
    """A stand-in generator: `windows` windows of 10 events, failing at window `fail_at`."""

    def generate(progress: Callable[[int], None]) -> Summary:
        for window in range(windows):
            if window == fail_at:
                raise RuntimeError("broker transport failure\nsecond line of detail")
            time.sleep(0.01)
            progress(10)
        return Summary(valid_events=10 * windows, records=10 * windows)

    return generate


def churning(changes: int, error: BaseException | None = None) -> Callable[..., ChurnResult]:
    """A stand-in churn: `changes` changes, then `error` if one is given."""

    def churn(on_change: Callable[[ChurnResult], None]) -> ChurnResult:
        result = ChurnResult()
        for _ in range(changes):
            time.sleep(0.01)
            result.counts["tier"] += 1
            on_change(result)
        if error is not None:
            raise error
        return result

    return churn


def endless_churn(on_change: Callable[[ChurnResult], None]) -> ChurnResult:
    """A churn that only ends when the demo halts it."""
    result = ChurnResult()
    while True:
        time.sleep(0.01)
        result.counts["price"] += 1
        on_change(result)


def test_traffic_and_churn_both_report() -> None:
    traffic = run_traffic(generating(20), churning(5), look=lambda *_: None)
    assert traffic.produced.valid_events == 200
    assert traffic.churn == ChurnReport(changes=5, state="ran")


def test_no_churn_says_it_did_not_run() -> None:
    traffic = run_traffic(generating(3), None, look=lambda *_: None)
    assert not traffic.churn.ran
    assert "not run" in churn_line(traffic.churn)


def test_churn_still_running_is_halted_and_keeps_its_count() -> None:
    traffic = run_traffic(generating(5), endless_churn, look=lambda *_: None, churn_grace_s=0.2)
    assert traffic.churn.changes > 0
    assert "cut short" in traffic.churn.state


def test_a_failing_generator_stops_churn_with_one_line() -> None:
    with pytest.raises(Problem) as caught:
        run_traffic(generating(100, fail_at=3), endless_churn, look=lambda *_: None)
    message = str(caught.value)
    assert (
        message
        == "the demo stopped: the traffic generator failed: RuntimeError: broker transport failure"
    )
    assert caught.value.hint


def test_a_failing_churn_stops_the_demo_with_its_reason() -> None:
    violation = psycopg.errors.UniqueViolation(
        'duplicate key value violates unique constraint "users_pkey"\nDETAIL: Key exists.'
    )
    began = time.monotonic()
    with pytest.raises(Problem) as caught:
        run_traffic(generating(10_000), churning(2, violation), look=lambda *_: None)
    assert time.monotonic() - began < 30  # the generator was stopped, not waited for
    assert "\n" not in str(caught.value)
    assert "dimension churn failed: UniqueViolation" in str(caught.value)
    assert "users_pkey" in str(caught.value)
    assert "lambdapipe" in caught.value.hint


def test_a_churn_problem_keeps_its_own_hint() -> None:
    empty = Problem("no dimensions to churn", hint="run `lambdapipe dims load` first")
    with pytest.raises(Problem) as caught:
        run_traffic(generating(10_000), churning(0, empty), look=lambda *_: None)
    assert str(caught.value).endswith("dimension churn failed: no dimensions to churn")
    assert caught.value.hint == "run `lambdapipe dims load` first"


def test_a_failing_watch_stops_generator_and_churn() -> None:
    def look(elapsed: float, produced: int) -> None:
        raise ConnectionError("serving layer refused the connection")

    with pytest.raises(Problem) as caught:
        run_traffic(generating(10_000), endless_churn, look=look)
    assert "watch of the pipeline failed: ConnectionError" in str(caught.value)


@pytest.mark.parametrize(
    ("report", "shown"),
    [
        (ChurnReport(changes=12, state="ran"), "12"),
        (ChurnReport(changes=0, state="ran"), "0 (ran, but committed no change)"),
        (ChurnReport(state="not run (churn rate 0)"), "0 (not run (churn rate 0))"),
    ],
)
def test_the_summary_says_how_churn_went(report: ChurnReport, shown: str) -> None:
    console = Console(record=True, width=200)
    console.print(summary(DemoResult(churn=report), "http://127.0.0.1:1/", running=True))
    text = console.export_text().splitlines()
    line = next(row for row in text if "dimension changes" in row)
    assert line.split("│")[-2].strip() == shown


def test_a_later_demo_counts_only_its_own_rows() -> None:
    earlier = Snapshot(15_000, 400, 90, dead_letters={"not_json": 4, "bad_ip": 6})
    dead_now = {"not_json": 9, "bad_ip": 6, "too_large": 1}
    now = Snapshot(30_000, 815, 200, dead_letters=dead_now, freshness_s=2.5)
    assert now.since(earlier) == Snapshot(
        accepted_events=15_000, transactions=415, sessions=110,
        dead_letters={"not_json": 5, "too_large": 1}, freshness_s=2.5,
    )  # fmt: skip


def test_each_demo_on_kept_data_is_another_run(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert [next_run(settings) for _ in range(3)] == [0, 1, 2]
    shutil.rmtree(settings.data_dir)  # what `lambdapipe down --purge` removes
    assert next_run(settings) == 0
