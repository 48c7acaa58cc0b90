"""The runner: executes a planned trial grid (benchsuite.running.planning.plan, which crosses
methods × tasks × seeds into validated trials before anything is written): keeps the
records an earlier run completed, hands the rest to an executor (benchsuite.running.executors)
and stores each record as it arrives (benchsuite.storage.records.write_record: atomically,
under the record's lock, never over a more complete one).

A record the results folder cannot take (disk full, read-only, the folder gone) is never
dropped: it is written to a fallback folder (`fallback_folders`, the first that takes
it), the run goes on, and at the end every such record is tried at its own path again;
the summary says which are still elsewhere, and where.

It handles plugins only through the registry and the contract; it names none of them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import tempfile
import threading
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from benchsuite.running.planning import TrialSpec
from benchsuite.running.progress import RunDisplay, display_mode
from benchsuite.storage.records import (
    GOOD_STATUSES,
    NOT_APPLICABLE,
    io_problem,
    kept_record,
    new_record,
    remove_stale_temporaries,
    write_record,
)
from benchsuite.storage.streams import MetricStream

if TYPE_CHECKING:
    from benchsuite.running.trial import Event

__all__ = ["RunSummary", "execute", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def fallback_folders() -> list[Path]:
    """Where records go that their results folder cannot take, in order: the user's
    cache, then the temporary folder (likely another file system than a full disk)."""
    run = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    return [Path.home() / ".cache" / "benchsuite" / "unsaved" / run,
            Path(tempfile.gettempdir()) / "benchsuite-unsaved" / run]


@dataclass
class RunSummary:
    """The status of every trial of a run's grid, whether it ran now or earlier."""

    planned: int
    rows: list[dict] = field(default_factory=list)
    interrupted: str | None = None   # the signal that stopped the run
    kept_instead: list[str] = field(default_factory=list)
    """One line per record another writer stored first and this run could not replace."""
    write_errors: list[str] = field(default_factory=list)
    """One line per record the results folder could not take (records.io_problem)."""
    elsewhere: dict[Path, Path] = field(default_factory=dict)
    """Record path → where it was written instead, for those still not at their path."""
    unstored: list[dict] = field(default_factory=list)
    """Records no folder could take (held here: the CLI prints them)."""
    cleaned: int = 0   # temporary files of killed writers removed at the start

    def add(self, spec: TrialSpec, record: dict, earlier: bool = False) -> None:
        self.rows.append({"trial": spec.label(), "status": record["status"],
                          "error": record["error"], "earlier": earlier, "path": spec.path})

    def counts(self, rows: list[dict] | None = None) -> str:
        statuses = [r["status"] for r in (self.rows if rows is None else rows)]
        return ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))) or "none"

    @property
    def written(self) -> list[dict]:
        return [r for r in self.rows if not r["earlier"]]

    @property
    def kept(self) -> list[dict]:
        return [r for r in self.rows if r["earlier"]]

    @property
    def unfinished(self) -> list[dict]:
        return [r for r in self.rows if r["status"] not in GOOD_STATUSES]

    def unfinished_table(self) -> str:
        rows = [[r["trial"], r["status"] + (" (earlier run)" if r["earlier"] else ""),
                 _shorten(r["error"] or "", 100)] for r in self.unfinished]
        return tabulate(rows, ["trial", "status", "error"])


def _shorten(text: str, width: int) -> str:
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= width else text[:width - 1] + "…"


# -- filing ---------------------------------------------------------------------------------
@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise KeyboardInterrupt, so `finally` blocks kill workers and
    nothing is left half-done (a plain SIGTERM would end Python without running them).
    Yields the list the names of the signals received go to (libraries such as Ray turn
    the exception into a bare KeyboardInterrupt, so it cannot carry the name)."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def stop(signum, frame):
        received.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(received[-1])

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def execute(specs: list[TrialSpec], executor, *, force: bool, quiet: bool) -> RunSummary:
    """Run the trials that have no record a re-run keeps (all with `force`) on `executor`
    and store each record as it arrives (`force`: a record replaces an equally complete
    one, see benchsuite.storage.records.write_record). While trials train, their events
    go to the display (benchsuite.running.progress; nothing under `quiet`) and to a
    metric stream beside each record (benchsuite.storage.streams)."""
    summary = RunSummary(planned=len(specs))
    for results in {spec.path.parents[2] for spec in specs}:  # planning checked each
        results.mkdir(parents=True, exist_ok=True)
    filing = _Filing(summary, force)
    summary.cleaned = remove_stale_temporaries(spec.path for spec in specs)
    pending, not_applicable = [], []
    for spec in specs:
        kept = None if force else kept_record(spec.path)
        if kept:
            if kept.get("protocol") != spec.protocol:
                # the same config (the same id) now traced to a protocol file: the label
                # follows; nothing measured changes
                filing.store(spec, {**kept, "protocol": spec.protocol}, relabel=True)
            summary.add(spec, kept, earlier=True)
        elif spec.incompatible:
            not_applicable.append(spec)
        else:
            pending.append(spec)
    display = RunDisplay(pending, getattr(executor, "jobs", 1), display_mode(quiet))
    metric_streams: dict[Path, MetricStream] = {}

    def arrived(spec: TrialSpec, events: list[Event]) -> None:
        stream = metric_streams.get(spec.path)
        if stream is None:  # <out>/<task>/<method>/<file>: the results folder is parents[2]
            stream = metric_streams[spec.path] = MetricStream(spec.path, spec.path.parents[2])
        running = stream.problem is None
        for event in events:
            stream.write(event.kind, event.iteration, event.elapsed_s, event.values)
        if running and stream.problem is not None:
            display.message(f"warning: {stream.problem}")
        display.events(spec, events)

    executor.watch(running=display.running, events=arrived)
    received = []
    try:
        with (executor if pending else nullcontext(), stop_on_signals() as received,
              display):
            for spec in not_applicable:
                filing.store(spec, new_record(spec, NOT_APPLICABLE, spec.incompatible))
            with closing(executor.outcomes(pending)) as outcomes:
                for spec, record in outcomes:
                    if (stream := metric_streams.pop(spec.path, None)) is not None:
                        stream.close()
                    filing.store(spec, record)
                    display.ended(spec, record)
    except KeyboardInterrupt:
        summary.interrupted = received[0] if received else "SIGINT"
    finally:
        for stream in metric_streams.values():
            stream.close()
        filing.retry()
    return summary


class _Filing:
    """Stores a run's records (write_record), and those their folder refuses elsewhere."""

    def __init__(self, summary: RunSummary, force: bool):
        self.summary, self.force = summary, force
        self.fallbacks = fallback_folders()
        self.held: dict[Path, tuple[TrialSpec, dict]] = {}

    def store(self, spec: TrialSpec, record: dict, relabel: bool = False) -> None:
        try:
            record = self._write(spec, record, force=self.force or relabel)
        except OSError as error:
            self.summary.write_errors.append(io_problem(error))
            self.held[spec.path] = (spec, record)
            self._elsewhere(spec, record)
        if not relabel:
            self.summary.add(spec, record)

    def _write(self, spec: TrialSpec, record: dict, force: bool) -> dict:
        """Store `record`; returns the record now at its path (another writer's, when
        that one is more complete)."""
        results = spec.path.parents[2]  # <out>/<task>/<method>/<file>
        if not results.is_dir():  # never re-create a vanished results folder
            raise FileNotFoundError(errno.ENOENT, "the results folder vanished", str(results))
        stored = write_record(spec.path, record, force=force)
        if stored.kept:
            self.summary.kept_instead.append(stored.describe())
        return stored.record

    def _elsewhere(self, spec: TrialSpec, record: dict) -> None:
        relative = spec.path.relative_to(spec.path.parents[2])
        for folder in self.fallbacks:
            try:
                write_record(folder / relative, record, force=True)
            except OSError:
                continue
            self.summary.elsewhere[spec.path] = folder / relative
            return
        self.summary.unstored.append(record)

    def retry(self) -> None:
        """Try each record stored elsewhere at its own path again (the disk may have
        room now); one that lands there is removed from the fallback folder."""
        for path, (spec, record) in list(self.held.items()):
            try:
                self._write(spec, record, force=self.force)
            except OSError:
                continue
            del self.held[path]
            moved = self.summary.elsewhere.pop(path, None)
            if moved is not None:
                moved.unlink(missing_ok=True)
            else:
                self.summary.unstored.remove(record)


def unstored_lines(summary: RunSummary) -> list[str]:
    """The records no folder took, one JSON line each (for the terminal)."""
    return [json.dumps(record, sort_keys=True, default=str) for record in summary.unstored]
