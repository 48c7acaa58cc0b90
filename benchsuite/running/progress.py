"""What a run shows while it runs (benchsuite.running.runner drives it).

  live   (a terminal): one bar for the grid (trials done / total, and an ETA: each
         trial's remaining meta-iterations × the seconds per iteration measured so far
         for its method × task, else for the grid, shared among the trials running side
         by side; evaluation time is not in it) and one bar per running trial (iteration,
         current outer loss, seconds per iteration), drawn with rich on stderr.
  lines  (stdout not a terminal: a log, CI): one line per trial as it ends.
  quiet  (`-q`): nothing.

It reads the trials' training events (benchsuite.running.trial.Event) and their records;
it changes neither.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from benchsuite.storage.records import DIVERGED, FINISHED

if TYPE_CHECKING:
    from benchsuite.running.planning import TrialSpec
    from benchsuite.running.trial import Event

RECENT_STEPS = 50  # seconds per iteration: the median of a trial's last steps


def display_mode(quiet: bool) -> str:
    if quiet:
        return "quiet"
    return "live" if sys.stdout.isatty() and sys.stderr.isatty() else "lines"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def trial_line(record: dict) -> str:
    """A finished trial in a few words: status, test score, cost."""
    parts = [record["status"]]
    metric = (record.get("objective") or {}).get("metric")
    value = (record.get("metrics") or {}).get(metric) if metric else None
    if isinstance(value, (int, float)):
        parts.append(f"{metric} {value:.4g}")
    timing = record.get("timing") or {}
    if timing.get("per_iteration_s"):
        parts.append(f"{timing['per_iteration_s']:.3g} s/it")
    if timing.get("total_s"):
        parts.append(f"{timing['total_s']:.0f} s")
    if record.get("error"):
        parts.append(str(record["error"]).splitlines()[0][:120])
    return " · ".join(parts)


class _Trial:
    """What the display knows of one trial of the grid."""

    def __init__(self, spec: TrialSpec):
        self.spec = spec
        self.iterations = spec.config["iterations"]
        self.iteration = 0
        self.outer_loss: float | None = None
        self.steps: deque[float] = deque(maxlen=RECENT_STEPS)
        self.bar: TaskID | None = None

    def take(self, event: Event) -> None:
        self.iterations = event.iterations
        if event.kind != "iteration":
            return
        self.iteration = event.iteration
        self.outer_loss = event.values.get("outer_loss")
        if event.values.get("step_s") is not None:
            self.steps.append(event.values["step_s"])

    @property
    def step_s(self) -> float | None:
        return statistics.median(self.steps) if self.steps else None

    def info(self) -> str:
        loss = "" if self.outer_loss is None else f"loss {self.outer_loss:.4g}"
        speed = "" if self.step_s is None else f"{self.step_s:.3g} s/it"
        return " · ".join(part for part in (loss, speed) if part)


class RunDisplay:
    """`with RunDisplay(pending, jobs, mode):` around a run; the runner calls `running`,
    `events`, `ended` and `message` as they happen."""

    def __init__(self, pending: list[TrialSpec], jobs: int, mode: str):
        self.mode, self.jobs = mode, max(1, jobs)
        self.trials = {spec.path: _Trial(spec) for spec in pending}
        self.done = 0
        self.speeds: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                 console=self.console, transient=False)
        self.grid = self.progress.add_task("grid", total=len(pending), info="")
        self.started = time.monotonic()

    def __enter__(self) -> RunDisplay:
        if self.mode == "live" and self.trials:
            self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()

    def running(self, specs: list[TrialSpec]) -> None:
        if self.mode != "live":
            return
        for spec in specs:
            trial = self.trials.get(spec.path)
            if trial is not None and trial.bar is None:
                trial.bar = self.progress.add_task(spec.label(), total=trial.iterations,
                                                   info="starting")

    def events(self, spec: TrialSpec, events: list[Event]) -> None:
        trial = self.trials.get(spec.path)
        if trial is None:
            return
        for event in events:
            trial.take(event)
        if self.mode == "live" and trial.bar is not None:
            self.progress.update(trial.bar, total=trial.iterations, completed=trial.iteration,
                                 info=trial.info())
            self._refresh_grid()

    def ended(self, spec: TrialSpec, record: dict) -> None:
        self.done += 1
        trial = self.trials.get(spec.path)
        per_iteration = (record.get("timing") or {}).get("per_iteration_s")
        if trial is not None:
            trial.iteration = trial.iterations
            if per_iteration:
                self.speeds[(spec.method, spec.task)].append(per_iteration)
            if trial.bar is not None:
                self.progress.remove_task(trial.bar)
                trial.bar = None
        line = f"[{self.done}/{len(self.trials)}] {spec.label()}: {trial_line(record)}"
        if self.mode == "lines":
            print(line, file=sys.stderr, flush=True)
        elif self.mode == "live":
            self.progress.update(self.grid, completed=self.done)
            if record["status"] not in (FINISHED, DIVERGED):
                self.console.print(line, markup=False, highlight=False)
            self._refresh_grid()

    def message(self, line: str) -> None:
        if self.mode == "live":
            self.console.print(line, markup=False, highlight=False)
        elif self.mode == "lines":
            print(line, file=sys.stderr, flush=True)

    def eta_s(self) -> float | None:
        """Seconds of meta-training left in the grid (see the module's docstring), or
        None before any speed is measured."""
        measured = {key: statistics.median(v) for key, v in self.speeds.items()}
        for trial in self.trials.values():
            if trial.step_s is not None and trial.iteration < trial.iterations:
                measured.setdefault((trial.spec.method, trial.spec.task), trial.step_s)
        if not measured:
            return None
        fallback = statistics.median(measured.values())
        left = sum((trial.iterations - trial.iteration) * measured.get(
            (trial.spec.method, trial.spec.task), fallback) for trial in self.trials.values())
        return left / self.jobs

    def _refresh_grid(self) -> None:
        eta = self.eta_s()
        elapsed = _duration(time.monotonic() - self.started)
        text = f"{elapsed} elapsed" + ("" if eta is None else f" · ETA {_duration(eta)} "
                                       "(training)")
        self.progress.update(self.grid, info=text)
