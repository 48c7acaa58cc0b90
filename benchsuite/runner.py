"""The runner: crosses methods × tasks × seeds into trials, validates them before anything
is written, keeps the records an earlier run completed, hands the rest to an executor
(benchsuite.executors) and writes each record atomically as it arrives.

It handles plugins only through the registry and the contract; it names none of them.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from benchsuite import config as configuration
from benchsuite import reproducibility
from benchsuite.errors import UsageError
from benchsuite.records import kept_record, new_record, record_path, write_atomic
from benchsuite.registry import Plugin, Registry, code_identity
from benchsuite.trial import resolve_device

GOOD_STATUSES = ("finished", "n/a")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class TrialSpec:
    """Everything a worker process needs to run one trial and a runner needs to file it."""

    method: str
    task: str
    seed: int
    config: dict[str, Any]
    trial_id: str
    code: dict[str, str]
    method_path: str
    task_path: str
    path: Path
    objective: dict[str, Any]
    incompatible: str | None = None
    command: str = ""                # the command line that planned it, for provenance

    def label(self) -> str:
        return f"{self.method} × {self.task} (seed {self.seed})"


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


def select(names: str, available: list[str], lookup) -> list[str]:
    if names.strip() == "all":
        return list(available)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if not chosen:
        raise UsageError("empty selection: name at least one, or 'all'")
    for name in chosen:
        lookup(name)  # raises UsageError with the valid names
    return list(dict.fromkeys(chosen))


def plan(registry: Registry, *, methods: str, tasks: str, seeds: int, budget: str,
         device: str, options: dict[str, Any], set_items: list[str],
         out: Path, device_here: bool = True, command: str = "",
         nondeterministic: bool = False) -> list[TrialSpec]:
    """The trial grid, validated before anything runs or is written. `device_here`: the
    trials run on this machine, so the device must exist here. `command` is stored in
    each record's provenance. CUDA trials run deterministically unless `nondeterministic`
    (the config key `deterministic`, see benchsuite.reproducibility)."""
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (got {seeds})")
    if budget not in configuration.BUDGETS:
        raise UsageError(f"unknown --budget {budget!r}; valid: {', '.join(configuration.BUDGETS)}")
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; pass a folder for the records")
    method_names = select(methods, registry.canonical_methods(), registry.method)
    task_names = select(tasks, registry.canonical_tasks(), registry.task)
    explicit = methods.strip() != "all" and tasks.strip() != "all"
    overrides = configuration.parse_overrides(set_items, {*method_names, *task_names})
    resolved_device = checked_device(device, device_here)
    options = {**options, **reproducibility.config_entries(resolved_device, nondeterministic)}

    specs = []
    for task_name in task_names:
        task_plugin = registry.task(task_name)
        for method_name in method_names:
            method_plugin = registry.method(method_name)
            reason = method_plugin.cls.incompatibility(task_plugin.cls)
            if reason and explicit:
                raise UsageError(f"{method_name} cannot run on {task_name}: {reason}; "
                                 "run `benchsuite list` for the compatible pairs")
            for seed in range(seeds):
                specs.append(_spec(method_name, method_plugin, task_plugin, seed, budget,
                                   resolved_device, options, overrides, out, reason,
                                   command))
    configuration.check_overrides_known(overrides, [s.config for s in specs],
                                        [{s.method, s.task} for s in specs])
    for spec in specs:
        problems = [] if spec.incompatible else spec_problems(registry, spec)
        if problems:
            raise UsageError(f"{spec.label()}: {problems[0]}")
    return specs


def checked_device(name: str, device_here: bool) -> str:
    """The device trials run on; `auto` is resolved on this machine."""
    import torch

    valid = "valid: auto, cpu, cuda, cuda:N"
    try:
        device = resolve_device(name)
    except RuntimeError:
        raise UsageError(f"unknown --device {name!r}; {valid}") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported --device {name!r}; {valid}")
    if device.type == "cuda" and not device_here and device.index is not None:
        raise UsageError(f"--device {name!r}: a remote executor gives each trial one GPU of "
                         "its own; write --device cuda")
    if device.type == "cuda" and device_here:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {name!r}: this machine has no CUDA device; use "
                             "--device cpu (or auto)")
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {name!r}: this machine has {count} CUDA devices "
                             f"(cuda:0 … cuda:{count - 1})")
    return str(device)


def spec_problems(registry: Registry, spec: TrialSpec) -> list[str]:
    task_cls = registry.task(spec.task).cls
    problems = list(task_cls.check_config(spec.config))
    missing_data = None if problems else task_cls.check_data(spec.config)
    return problems + ([missing_data] if missing_data else [])


def _spec(method_name: str, method_plugin: Plugin, task_plugin: Plugin, seed: int, budget: str,
          device: str, options: dict, overrides, out: Path, reason: str | None,
          command: str) -> TrialSpec:
    config = configuration.resolve(task_plugin.cls, method_plugin.cls, seed=seed, budget=budget,
                                   device=device, options=options, overrides=overrides)
    code = code_identity(method_plugin, task_plugin)
    trial_id = configuration.trial_id(method_name, task_plugin.cls.name, config, code)
    return TrialSpec(method=method_name, task=task_plugin.cls.name, seed=seed, config=config,
                     trial_id=trial_id, code=code, method_path=str(method_plugin.path),
                     task_path=str(task_plugin.path),
                     path=record_path(out, task_plugin.cls.name, method_name, seed, trial_id),
                     objective={"metric": task_plugin.cls.metric,
                                "higher_is_better": task_plugin.cls.higher_is_better},
                     incompatible=reason, command=command)


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
                _file(spec, new_record(spec, "n/a", spec.incompatible), summary)
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
