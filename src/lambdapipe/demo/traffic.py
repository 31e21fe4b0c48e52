"""The demo's traffic: the generator and dimension churn side by side, watched from the main thread.

Each runs in its own thread and is handed a callback it calls after every step (the generator's
progress, churn's `on_change`). The first failure anywhere (either thread, or the watching)
stops the rest at their next step, and the demo ends with one line saying what failed and
what to do: a Problem, never a stack trace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lambdapipe.errors import Problem
from lambdapipe.generator.run import Summary
from lambdapipe.ingest.churn import ChurnResult

T = TypeVar("T")
Generate = Callable[[Callable[[int], None]], Summary]
Churn = Callable[[Callable[[ChurnResult], None]], ChurnResult]
Look = Callable[[float, int], None]


class Halt(Exception):
    """Raised inside a worker's own callback when the demo is stopping: it ends between steps."""


@dataclass
class ChurnReport:
    """What the summary says about churn: the changes committed, and whether it ran to its end."""

    changes: int = 0
    state: str = "not run"

    @property
    def ran(self) -> bool:
        return self.state == "ran"


@dataclass
class Traffic:
    produced: Summary
    churn: ChurnReport


class Worker(Generic[T]):
    """One background task, named as a user knows it, that keeps its result or its failure."""

    def __init__(self, name: str, hint: str, task: Callable[[], T]) -> None:
        self.name, self.hint, self.task = name, hint, task
        self.result: T | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.task()
        except Halt:
            pass
        except BaseException as exc:
            self.error = exc

    def problem(self) -> Problem:
        """The failure as a one-line Problem."""
        if self.error is None:
            return Problem(f"the demo stopped: the {self.name} ended without a result")
        return stopped_by(self.name, self.error, self.hint)


def stopped_by(what: str, exc: BaseException, hint: str) -> Problem:
    """A one-line Problem for a failure of `what`; a Problem keeps its own hint when it has one."""
    own_hint = exc.hint if isinstance(exc, Problem) else ""
    return Problem(f"the demo stopped: the {what} failed: {one_line(exc)}", hint=own_hint or hint)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, named by its type when it says nothing else."""
    text = str(exc).strip()
    if isinstance(exc, Problem):
        return text.splitlines()[0] if text else "unknown problem"
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


GENERATOR_HINT = "is Kafka up (`lambdapipe status`)? its log under LAMBDAPIPE_HOME/logs says why"
CHURN_HINT = "is PostgreSQL up (`lambdapipe status`)? `lambdapipe dims churn` shows the error alone"
WATCH_HINT = "is the serving layer up (`lambdapipe status`)? its log: serving.log"


def run_traffic(
    generate: Generate, churn: Churn | None, look: Look, churn_grace_s: float = 10.0
) -> Traffic:
    """Generate (and churn) in the background; `look(elapsed_s, produced)` about every second.

    Returns when the generator is done (churn gets `churn_grace_s` more to finish its own run);
    raises a Problem naming the first part that failed, after stopping the others.
    """
    halt = threading.Event()
    produced = [0]
    churned: list[ChurnResult] = []  # churn's running count, kept if it is cut short

    def progress(n: int) -> None:
        _step(halt)
        produced[0] += n

    def changed(so_far: ChurnResult) -> None:
        churned[:] = [so_far]
        _step(halt)

    generator = Worker("traffic generator", GENERATOR_HINT, lambda: generate(progress))
    churner = (
        Worker("dimension churn", CHURN_HINT, lambda: churn(changed)) if churn is not None else None
    )
    workers = [w for w in (generator, churner) if w is not None]
    for worker in workers:
        worker.thread.start()
    try:
        _watch(generator, churner, look, produced)
        if churner is not None:
            churner.thread.join(churn_grace_s)
    finally:
        halt.set()  # whatever ended the watch, nothing keeps running behind the demo's back
        for worker in workers:
            worker.thread.join(5.0)
    for worker in workers:
        if worker.error is not None:
            raise worker.problem()
    if generator.result is None:
        raise generator.problem()
    return Traffic(generator.result, churn_report(churner, churned[0] if churned else None))


def _watch(
    generator: Worker[Summary], churner: Worker[ChurnResult] | None, look: Look, produced: list[int]
) -> None:
    """Look every second until the generator is done; stop at the first failure anywhere."""
    began = time.monotonic()
    while generator.thread.is_alive():
        for worker in (generator, churner):
            if worker is not None and worker.error is not None:
                raise worker.problem()
        try:
            look(time.monotonic() - began, produced[0])
        except Problem as problem:
            raise stopped_by("watch of the pipeline", problem, WATCH_HINT) from problem
        except Exception as exc:
            raise stopped_by("watch of the pipeline", exc, WATCH_HINT) from exc
        generator.thread.join(1.0)


def churn_report(
    churner: Worker[ChurnResult] | None, so_far: ChurnResult | None = None
) -> ChurnReport:
    """How churn went: not run, ran to its end, or cut short when the traffic ended."""
    if churner is None:
        return ChurnReport(state="not run (churn rate 0)")
    if churner.result is not None:
        return ChurnReport(changes=churner.result.total, state="ran")
    changes = so_far.total if so_far is not None else 0
    return ChurnReport(changes=changes, state="cut short when the traffic ended")


def _step(halt: threading.Event) -> None:
    if halt.is_set():
        raise Halt
