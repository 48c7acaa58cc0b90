"""The runner: crosses methods × tasks × seeds into trials, skips finished ones, executes
the rest (each in a fresh process by default) and writes one record per trial.

It handles plugins only through the registry and the contract; it names none of them.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsuite import config as configuration
from benchsuite.errors import UsageError
from benchsuite.records import SCHEMA_VERSION, is_done, provenance, record_path, write_atomic
from benchsuite.registry import Plugin, Registry, load_plugin_file
from benchsuite.trial import Diverged, resolve_device, run_trial

EXECUTORS = ("local", "inline")


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

    def label(self) -> str:
        return f"{self.method} × {self.task} (seed {self.seed})"


@dataclass
class RunSummary:
    statuses: dict[str, list[str]] = field(default_factory=dict)  # status -> trial labels

    def add(self, status: str, label: str) -> None:
        self.statuses.setdefault(status, []).append(label)

    @property
    def failed(self) -> list[str]:
        return [f"{label}: {status}" for status, labels in self.statuses.items()
                if status not in ("finished", "n/a", "skipped") for label in labels]


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
         out: Path) -> list[TrialSpec]:
    """The trial grid, validated before anything runs or is written."""
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (got {seeds})")
    if budget not in configuration.BUDGETS:
        raise UsageError(f"unknown --budget {budget!r}; valid: {', '.join(configuration.BUDGETS)}")
    method_names = select(methods, registry.canonical_methods(), registry.method)
    task_names = select(tasks, registry.canonical_tasks(), registry.task)
    explicit = methods.strip() != "all" and tasks.strip() != "all"
    overrides = configuration.parse_overrides(set_items, {*method_names, *task_names})
    resolved_device = str(resolve_device(device))

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
                                   resolved_device, options, overrides, out, reason))
    configuration.check_overrides_known(overrides, [s.config for s in specs])
    for spec in specs:
        problems = [] if spec.incompatible else spec_problems(registry, spec)
        if problems:
            raise UsageError(f"{spec.label()}: {problems[0]}")
    return specs


def spec_problems(registry: Registry, spec: TrialSpec) -> list[str]:
    task_cls = registry.task(spec.task).cls
    problems = list(task_cls.check_config(spec.config))
    missing_data = None if problems else task_cls.check_data(spec.config)
    return problems + ([missing_data] if missing_data else [])


def _spec(method_name: str, method_plugin: Plugin, task_plugin: Plugin, seed: int, budget: str,
          device: str, options: dict, overrides, out: Path, reason: str | None) -> TrialSpec:
    config = configuration.resolve(task_plugin.cls, method_plugin.cls, seed=seed, budget=budget,
                                   device=device, options=options, overrides=overrides)
    code = {"method": method_plugin.source_hash, "task": task_plugin.source_hash}
    trial_id = configuration.trial_id(method_name, task_plugin.cls.name, config, code)
    return TrialSpec(method=method_name, task=task_plugin.cls.name, seed=seed, config=config,
                     trial_id=trial_id, code=code, method_path=str(method_plugin.path),
                     task_path=str(task_plugin.path),
                     path=record_path(out, task_plugin.cls.name, method_name, seed, trial_id),
                     objective={"metric": task_plugin.cls.metric,
                                "higher_is_better": task_plugin.cls.higher_is_better},
                     incompatible=reason)


def base_record(spec: TrialSpec, status: str) -> dict:
    return {
        "schema_version": SCHEMA_VERSION, "id": spec.trial_id, "method": spec.method,
        "task": spec.task, "seed": spec.seed, "status": status, "config": spec.config,
        "code": spec.code, "metrics": {}, "curve": [], "timing": {}, "memory": {},
        "provenance": {}, "error": None, "objective": spec.objective,
    }


# -- executing one trial ---------------------------------------------------------------------
def trial_outcome(spec: TrialSpec) -> dict:
    """Run the trial in this process and return its full record (any status)."""
    import torch

    registry = Registry()
    load_plugin_file(Path(spec.method_path), registry)
    load_plugin_file(Path(spec.task_path), registry)
    if registry.unavailable:
        record = base_record(spec, "failed")
        record["error"] = "; ".join(registry.unavailable.values())
        return record
    record = base_record(spec, "finished")
    device = torch.device(spec.config["device"])
    try:
        measured = run_trial(registry.method(spec.method).cls, registry.task(spec.task).cls,
                             spec.config)
        measured.pop("device")
        record.update(measured)
    except Diverged as error:
        record.update(status="diverged", error=str(error))
    except torch.OutOfMemoryError as error:
        record.update(status="oom", error=str(error).splitlines()[0])
    except MemoryError:
        record.update(status="oom", error="host out of memory (MemoryError)")
    except Exception as error:  # a plugin's failure is a trial's status, not a crash
        record.update(status="failed", error=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc(limit=8))
    record["provenance"] = provenance(device)
    return record


def _child(spec: TrialSpec, connection) -> None:
    connection.send(trial_outcome(spec))
    connection.close()


def run_isolated(spec: TrialSpec, timeout: float | None) -> dict:
    """Run a trial in a fresh spawned process, with a wall-clock limit."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(spec, sender), daemon=True)
    started = time.monotonic()
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            record = receiver.recv()
            process.join()
            return record
        status, error = "failed", _exit_reason(process)
        if process.is_alive():
            status, error = "timeout", f"exceeded the {timeout:g} s trial time limit"
        record = base_record(spec, status)
        record["error"] = error
        record["timing"] = {"total_s": time.monotonic() - started}
        return record
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()


def _exit_reason(process) -> str:
    process.join(timeout=5)
    code = process.exitcode
    if code is not None and code < 0 and -code == 9:
        return "worker killed by SIGKILL (often the host's out-of-memory killer)"
    return f"worker process exited with code {code} before reporting a result"


def execute(specs: list[TrialSpec], *, executor: str, force: bool, quiet: bool,
            timeout: float | None) -> RunSummary:
    from tqdm import tqdm

    summary = RunSummary()
    bar = tqdm(specs, disable=quiet, unit="trial", file=sys.stderr, dynamic_ncols=True)
    try:
        for spec in bar:
            bar.set_description(spec.label())
            if not force and is_done(spec.path):
                summary.add("skipped", spec.label())
                continue
            if spec.incompatible:
                record = base_record(spec, "n/a")
                record["error"] = spec.incompatible
            elif executor == "inline":
                record = trial_outcome(spec)
            else:
                record = run_isolated(spec, timeout)
            write_atomic(spec.path, record)
            summary.add(record["status"], spec.label())
            if record["status"] not in ("finished", "n/a") and not quiet:
                bar.write(f"{spec.label()}: {record['status']}: {record['error']}")
    finally:
        bar.close()
    return summary
