"""The runner: executes a planned trial grid (benchsuite.running.planning.plan, which crosses
methods × tasks × seeds into validated trials before anything is written): keeps the
records an earlier run completed, hands the rest to an executor (benchsuite.running.executors) and
writes each record atomically as it arrives.

It handles plugins only through the registry and the contract; it names none of them.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field

from tabulate import tabulate

from benchsuite.running.planning import TrialSpec
from benchsuite.storage.records import (
    GOOD_STATUSES,
    NOT_APPLICABLE,
    kept_record,
    new_record,
    write_atomic,
)

__all__ = ["RunSummary", "execute", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class RunSummary:
    """The status of every trial of a run's grid, whether it ran now or earlier."""

    planned: int
    rows: list[dict] = field(default_factory=list)
    interrupted: str | None = None   # the signal that stopped the run

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
    and write each record atomically as it arrives."""
    from tqdm import tqdm

    summary = RunSummary(planned=len(specs))
    pending, not_applicable = [], []
    for spec in specs:
        kept = None if force else kept_record(spec.path)
        if kept:
            if kept.get("protocol") != spec.protocol:
                # the same config (the same id) now traced to a protocol file: the label
                # follows; nothing measured changes
                write_atomic(spec.path, {**kept, "protocol": spec.protocol})
            summary.add(spec, kept, earlier=True)
        elif spec.incompatible:
            not_applicable.append(spec)
        else:
            pending.append(spec)
    bar = tqdm(total=len(pending), disable=quiet or not pending, unit="trial",
               file=sys.stderr, dynamic_ncols=True)
    if hasattr(executor, "watch"):  # executors that run trials side by side list them
        executor.watch(lambda running: bar.set_postfix_str(
            ("running: " + ", ".join(spec.label() for spec in running)) if running else "",
            refresh=True))
    received = []
    try:
        with executor if pending else nullcontext(), stop_on_signals() as received:
            for spec in not_applicable:
                _file(spec, new_record(spec, NOT_APPLICABLE, spec.incompatible), summary)
            with closing(executor.outcomes(pending)) as outcomes:
                for spec, record in outcomes:
                    _file(spec, record, summary)
                    bar.update()
                    bar.set_description(f"{spec.label()}: {record['status']}")
                    if record["status"] not in GOOD_STATUSES and not quiet:
                        bar.write(f"{spec.label()}: {record['status']}: {record['error']}")
    except KeyboardInterrupt:
        summary.interrupted = received[0] if received else "SIGINT"
    finally:
        bar.close()
    return summary


def _file(spec: TrialSpec, record: dict, summary: RunSummary) -> None:
    write_atomic(spec.path, record)
    summary.add(spec, record)
