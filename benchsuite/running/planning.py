"""Planning: from names, a budget and settings to validated trials, before anything runs
or is written. The one place a (method, task) config is resolved:

  select           names (or `all`) checked against the registry
  checked_device   the device trials run on, checked on this machine
  pair_protocol    the protocol a (method, task) trial runs under (benchsuite.running.protocols)
  resolve_pair     one pair's config: benchsuite.running.config.resolve under that protocol
  plan_pair        one trial's spec: its config, code identity, trial id and record path
  plan             the methods × tasks × seeds grid, validated: what `run`, `sweep` and
                   `tune` plan with (a grid file is read into its arguments,
                   benchsuite.running.gridfile)
  rerun_config     a stored trial's config for re-running it here (benchsuite verify)

The runner (benchsuite.running.runner) executes what `plan` returns; the sweep
(benchsuite.running.sweep) measures the configs of its specs; tuning
(benchsuite.running.tune) plans one grid per tuning point. The benchmarks
(benchmarks/workloads.py) resolve one pair with `resolve_pair`, so every tool layers a
config the same way, and build what they measure with benchsuite.running.trial.set_up,
the set-up every trial runs.

It handles plugins only through the registry and the contract; it names none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsuite.core.errors import UsageError
from benchsuite.running import config as configuration
from benchsuite.running import protocols as protocol_files
from benchsuite.running.registry import Registry, code_identity
from benchsuite.running.trial import resolve_device
from benchsuite.storage import reproducibility
from benchsuite.storage.records import folder_problem, record_path

MAX_SEEDS = 1000
"""Seeds per method × task: more is a typo, and the grid is built in memory."""
MAX_TRIALS = 100_000
"""Trials in one grid (methods × tasks × seeds)."""


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker process needs to run one trial and a runner needs to file it.
    Frozen: a spec is what was planned and validated (its id is the hash of its config);
    the config dict itself is not copied, so do not mutate it either."""

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
    protocol: dict[str, Any] = field(default_factory=dict)
    """Which protocol set its config (benchsuite.running.protocols.Protocol.as_record)."""

    def label(self) -> str:
        return f"{self.method} × {self.task} (seed {self.seed})"


def select(names: str, available: list[str], lookup: Callable[[str], Any]) -> list[str]:
    """The comma-separated `names` (or every one of `available` for `all`), each checked
    with `lookup` (which raises UsageError with the valid names and returns the plugin)
    and named by its plugin's own name (an alias is its plugin), without repeats."""
    if names.strip() == "all":
        return list(available)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if not chosen:
        raise UsageError("empty selection: name at least one, or 'all'")
    return list(dict.fromkeys(lookup(name).cls.name for name in chosen))


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
    if device.type == "cpu" and device.index is not None:
        raise UsageError(f"--device {name!r}: the CPU has no index (trials use its cores "
                         "as torch threads); write --device cpu")
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
    """Why `spec` cannot run beyond its keys' declarations (checked when its config was
    resolved): the task's cross-key checks, then (only if those pass) the task's data."""
    task = registry.task(spec.task)
    problems = task.cls.check_config(spec.config)
    missing_data = None if problems else task.cls.check_data(spec.config)
    return problems + ([missing_data] if missing_data else [])


# -- one pair --------------------------------------------------------------------------------
def pair_protocol(registry: Registry, protocols: protocol_files.Protocols, method: str,
                  task: str,
                  named: protocol_files.NamedProtocol | None = None) -> protocol_files.Protocol:
    """The protocol the trials of `method` × `task` run under: `named`'s settings for the
    method when a named protocol was chosen, else the pair's paper or tuned protocol, else
    the task's defaults (a floor: its own settings)."""
    if named is not None and method in named.floors:
        declared = configuration.resolve(registry.task(task).cls, registry.method(method).cls,
                                         seed=0, budget="quick", device="cpu", options={},
                                         overrides=[])
        return named.for_floor(method, declared)
    if named is not None:
        return named.for_method(method)
    method_cls = registry.method(method).cls
    return protocols.for_trial(method_cls.name, task, floor=method_cls.is_floor)


def resolve_pair(registry: Registry, method: str, task: str, *, seed: int, budget: str,
                 device: str, options: Mapping[str, Any] | None = None,
                 overrides: list[configuration.Override] | None = None,
                 protocol: protocol_files.Protocol | None = None,
                 last: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config of `method` × `task` for `seed`, layered by benchsuite.running.config.resolve:
    defaults < `protocol`'s settings (None: none, the task's defaults) < `options` (set
    whether or not the plugins know the key; None values are left out) < `overrides`
    (parsed `--set` items) < `last`. `device` is used as given (see checked_device)."""
    return configuration.resolve(registry.task(task).cls, registry.method(method).cls,
                                 seed=seed, budget=budget, device=device,
                                 options=dict(options or {}), overrides=list(overrides or []),
                                 protocol=protocol.settings if protocol is not None else None,
                                 last=last)


def plan_pair(registry: Registry, method: str, task: str, seed: int, *, budget: str,
              device: str, options: Mapping[str, Any], overrides: list[configuration.Override],
              out: Path, protocol: protocol_files.Protocol, incompatible: str | None = None,
              command: str = "", last: Mapping[str, Any] | None = None) -> TrialSpec:
    """The spec of one trial: its resolved config (resolve_pair), the code it runs
    (benchsuite.running.registry.code_identity), its id and where its record goes. Not validated
    beyond what resolving checks: `plan` runs spec_problems over the grid."""
    method_plugin, task_plugin = registry.method(method), registry.task(task)
    task_name = task_plugin.cls.name
    config = resolve_pair(registry, method, task, seed=seed, budget=budget, device=device,
                          options=options, overrides=overrides, protocol=protocol, last=last)
    code = code_identity(method_plugin, task_plugin)
    trial_id = configuration.trial_id(method, task_name, config, code)
    return TrialSpec(method=method, task=task_name, seed=seed, config=config,
                     trial_id=trial_id, code=code, method_path=str(method_plugin.path),
                     task_path=str(task_plugin.path),
                     path=record_path(out, task_name, method, seed, trial_id),
                     objective={"metric": task_plugin.cls.metric,
                                "higher_is_better": task_plugin.cls.higher_is_better},
                     incompatible=incompatible, command=command,
                     protocol=protocol.as_record())


# -- the grid --------------------------------------------------------------------------------
def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """The seeds of a grid: N means 0 … N−1 (what every command's --seeds says), a
    sequence is taken as given."""
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_SEEDS:
            raise UsageError(f"--seeds must be at least 1 and at most {MAX_SEEDS} (got "
                             f"{seeds})")
        return list(range(seeds))
    chosen = list(dict.fromkeys(seeds))
    if not chosen or min(chosen) < 0 or len(chosen) > MAX_SEEDS:
        raise UsageError(f"seeds must be 1 to {MAX_SEEDS} whole numbers from 0 (got "
                         f"{list(seeds)})")
    return chosen


def plan(registry: Registry, *, methods: str = "all", tasks: str = "all",
         seeds: int | Sequence[int] = 1, budget: str = "quick", device: str = "auto",
         options: Mapping[str, Any] | None = None,
         set_items: Sequence[str] = (), overrides: Sequence[configuration.Override] = (),
         out: Path = Path("results"), device_here: bool = True, command: str = "",
         nondeterministic: bool = False, protocol: str | None = None,
         protocols: protocol_files.Protocols | None = None,
         task_choices: Sequence[str] | None = None,
         pairs: Collection[tuple[str, str]] | None = None,
         last: Callable[[str, str], Mapping[str, Any]] | None = None) -> list[TrialSpec]:
    """The trial grid, validated before anything runs or is written: the one planner of
    `run`, `sweep` and `tune`. It selects the methods and tasks, picks each pair's
    protocol, layers every config (benchsuite.running.config.resolve: every value checked against
    its declaration), checks the --set items and the task's data, and names each trial
    by its seed and id (benchsuite.storage.records.record_path).

    `device_here`: the trials run on this machine, so the device must exist here.
    `command` is stored in each record's provenance. CUDA trials run deterministically
    unless `nondeterministic` (the config key `deterministic`). Each trial runs under its
    (method, task) protocol, or under the named `protocol` (its task and methods are then
    the default selection); `protocols` defaults to the protocol folders
    (benchsuite.running.protocols.load). `set_items` are `--set` items, `overrides` settings
    already parsed (a grid file's). `task_choices`: the tasks `all` means (default:
    every task). `pairs`: keep only these (method, task) pairs. `last(method, task)`:
    settings applied after every override (a tuning grid point)."""
    protocols = protocols if protocols is not None else protocol_files.load()
    named = protocols.named_protocol(protocol) if protocol else None
    if named:
        methods, tasks = _named_selection(named, methods, tasks)
    seed_values = seed_list(seeds)
    if budget not in configuration.BUDGETS:
        raise UsageError(f"unknown --budget {budget!r}; valid: {', '.join(configuration.BUDGETS)}")
    unwritable = folder_problem(Path(out), "--out")
    if unwritable:
        raise UsageError(unwritable)
    method_names = select(methods, registry.canonical_methods(), registry.method)
    task_names = select(tasks, list(task_choices if task_choices is not None
                                    else registry.canonical_tasks()), registry.task)
    trials = len(method_names) * len(task_names) * len(seed_values)
    if trials > MAX_TRIALS:
        raise UsageError(f"the grid has {trials} trials ({len(method_names)} methods × "
                         f"{len(task_names)} tasks × {len(seed_values)} seeds), more than "
                         f"the {MAX_TRIALS} one run plans; split it into several runs")
    explicit = methods.strip() != "all" and tasks.strip() != "all"
    applying = configuration.in_scope(list(overrides), set(method_names), set(task_names),
                                      set(registry.methods), set(registry.tasks))
    all_overrides = [*applying, *configuration.parse_overrides(
        list(set_items), {*method_names, *task_names})]
    resolved_device = checked_device(device, device_here)
    options = {**(options or {}),
               **reproducibility.config_entries(resolved_device, nondeterministic)}

    specs = []
    for task_name in task_names:
        task_cls = registry.task(task_name).cls
        for method_name in method_names:
            if pairs is not None and (method_name, task_name) not in pairs:
                continue
            reason = registry.method(method_name).cls.incompatibility(task_cls)
            if reason and explicit:
                raise UsageError(f"{method_name} cannot run on {task_name}: {reason}; "
                                 "run `benchsuite list` for the compatible pairs")
            trial_protocol = pair_protocol(registry, protocols, method_name, task_name, named)
            for seed in seed_values:
                specs.append(plan_pair(
                    registry, method_name, task_name, seed, budget=budget,
                    device=resolved_device, options=options, overrides=all_overrides,
                    out=out, protocol=trial_protocol, incompatible=reason, command=command,
                    last=last(method_name, task_name) if last else None))
    configuration.check_overrides_known(all_overrides, [s.config for s in specs],
                                        [{s.method, s.task} for s in specs])
    for spec in specs:
        problems = [] if spec.incompatible else spec_problems(registry, spec)
        if problems:
            raise UsageError(f"{spec.label()}: {problems[0]}")
    return specs


def plan_run(registry: Registry, options: Mapping[str, Any],
             overrides: Sequence[configuration.Override] = (), *, out: Path,
             command: str) -> list[TrialSpec]:
    """The grid of `benchsuite run` with `options`, its parameters by name (a grid file's
    merged in; `overrides`, the file's settings): what `run` runs and what `migrate`
    re-plans a stored record's command into."""
    return plan(registry, methods=options["methods"], tasks=options["tasks"],
                seeds=options["seeds"], budget=options["budget"], device=options["device"],
                options={"iterations": options["iterations"],
                         "meta_batch": options["meta_batch"]},
                overrides=overrides, set_items=options["set_"], out=out,
                device_here=options["executor"] != "ray", command=command,
                nondeterministic=options["nondeterministic"], protocol=options["protocol"])


def _named_selection(named: protocol_files.NamedProtocol, methods: str,
                     tasks: str) -> tuple[str, str]:
    """The methods and tasks a run with a named protocol covers: the protocol's, or the
    subset asked for (it knows settings for those only)."""
    if tasks.strip() not in ("all", named.task):
        raise UsageError(f"--protocol {named.name} is an experiment on {named.task}; drop "
                         f"--tasks or write --tasks {named.task}")
    chosen = list(named.runs) if methods.strip() == "all" else [
        m.strip() for m in methods.split(",") if m.strip()]
    outside = [m for m in chosen if m not in named.runs]
    if outside:
        raise UsageError(f"--protocol {named.name} runs {', '.join(named.runs)}; it has "
                         f"no settings for {', '.join(outside)}")
    return ",".join(chosen), named.task


# -- a stored trial ----------------------------------------------------------------------------
def rerun_config(record: Mapping[str, Any]) -> dict[str, Any]:
    """The config a stored trial is re-run with on this machine: its own, as it was
    planned (the protocol and every setting are in it; nothing is re-resolved, so the
    record's identity holds), on the CPU when it ran on CUDA and this machine has none."""
    import torch

    # a runner key added after the record was written takes its default, which is what ran
    config = {**configuration.RUNNER_DEFAULTS, **record["config"]}
    if torch.device(config["device"]).type == "cuda" and not torch.cuda.is_available():
        config["device"] = "cpu"
    return config
