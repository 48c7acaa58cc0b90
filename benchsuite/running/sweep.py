"""The hypergradient accuracy sweep — the picture Grazzi et al. 2020 ("On the Iteration
Complexity of Hypergradient Computation") argue from, for every method in one run.

For each task that has an exact hypergradient and each method compatible with it, the
method's `accuracy_knob` (inner steps, CG iterations, ...) is set to every value of a
grid; at each value the method's hypergradient is computed at φ₀ on the same fixed
meta-batch a trial uses for its fidelity metrics, compared with the exact one (relative
error, cosine), and timed (median of repeats after one warm-up call). A method without a
knob is measured once, at its defaults. The numbers go to `sweep.csv`, and each task gets
a figure: error vs knob value and error vs time, one line per method.

Like the runner, it reaches plugins only through the registry and the contract.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from benchsuite.core.contract import Task
from benchsuite.core.errors import UsageError
from benchsuite.core.seeding import derive_seed, generator
from benchsuite.running import protocols as protocol_files
from benchsuite.running.measure import synchronize
from benchsuite.running.planning import plan
from benchsuite.running.registry import Registry
from benchsuite.running.trial import compare_hypergradients, set_up

DEFAULT_GRID = (1, 2, 4, 8, 16, 32, 64, 128)
ERROR_FLOOR = 1e-17  # exact zeros are drawn here on the log axes


@dataclass
class SweepPoint:
    task: str
    method: str
    knob: str
    value: int | None
    rel_error: float
    cosine: float
    seconds: float
    repeats: int
    device: str


@dataclass
class SweepPair:
    method: str
    task: str
    config: dict


def has_exact_hypergradient(task_cls: type[Task]) -> bool:
    return task_cls.exact_hypergradient is not Task.exact_hypergradient


def parse_grid(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"bad --grid {text!r}: write comma-separated integers, "
                         "e.g. 1,2,4,8") from None
    if not values or min(values) < 1:
        raise UsageError(f"bad --grid {text!r}: give at least one value, all at least 1")
    return tuple(sorted(set(values)))


def plan_sweep(registry: Registry, *, methods: str, tasks: str, seed: int, device: str,
               set_items: list[str],
               protocols: protocol_files.Protocols | None = None) -> list[SweepPair]:
    """The method × task pairs to sweep, each with its config planned as a trial of the
    pair would be (benchsuite.running.planning.plan: the quick budget, the pair's protocol,
    `--set`, every value checked); `protocols` defaults to the protocol folders. Raises
    UsageError before anything runs."""
    exact_tasks = [n for n in registry.canonical_tasks()
                   if has_exact_hypergradient(registry.task(n).cls)]
    if tasks.strip() != "all":
        for name in (n.strip() for n in tasks.split(",") if n.strip()):
            if registry.task(name).cls.name not in exact_tasks:
                raise UsageError(f"task {name!r} has no exact hypergradient to compare "
                                 f"with; sweepable tasks: {', '.join(exact_tasks) or 'none'}")
    specs = plan(registry, methods=methods, tasks=tasks, seeds=[seed], device=device,
                 set_items=set_items, protocols=protocols, task_choices=exact_tasks)
    pairs = [SweepPair(s.method, s.task, s.config) for s in specs if not s.incompatible]
    if not pairs:
        raise UsageError("no compatible method × task pair to sweep; run `benchsuite list`")
    return pairs


def time_hypergradient(compute: Callable[[], Any], device: torch.device,
                       repeats: int) -> tuple[Any, float]:
    """One warm-up call (lazy initialisation, caches), then the median of `repeats`
    device-synchronised calls. Returns the last result and the median seconds."""
    result = compute()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        result = compute()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def sweep_pair(registry: Registry, pair: SweepPair, grid: tuple[int, ...],
               repeats: int) -> list[SweepPoint]:
    method_cls = registry.method(pair.method).cls
    task_cls = registry.task(pair.task).cls
    seed = pair.config["seed"]
    device = torch.device(pair.config["device"])
    torch.manual_seed(derive_seed(task_cls.name, method_cls.name, seed))
    # φ₀ and the meta-batch are the ones a trial of the same seed scores fidelity on.
    built = set_up(method_cls, task_cls, pair.config,
                   init=generator(task_cls.name, seed, "init"))
    task, phi = built.task, built.phi
    batch = built.episodes("train", pair.config["meta_batch"],
                           generator(task_cls.name, seed, "fidelity"))
    exact = task.exact_hypergradient(phi, batch)
    if exact is None:  # plan_sweep keeps the tasks that override it; one may still decline
        raise ValueError(f"{pair.task} gave no exact hypergradient to compare with")

    knob = method_cls.accuracy_knob
    points = []
    for value in (grid if knob else (None,)):
        config = dict(pair.config, **({knob: value} if knob else {}))
        method = method_cls(config)
        # the default binds this loop's method; mypy cannot infer a lambda's default
        result, seconds = time_hypergradient(lambda m=method: m.meta_gradient(task, phi, batch),  # type: ignore[misc]
                                             device, repeats)
        fidelity = compare_hypergradients(result.grads, exact)
        points.append(SweepPoint(task=pair.task, method=pair.method, knob=knob or "",
                                 value=value, rel_error=fidelity["hypergrad_rel_error"],
                                 cosine=fidelity["hypergrad_cosine"], seconds=seconds,
                                 repeats=repeats, device=str(device)))
    return points


def write_csv(points: list[SweepPoint], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(SweepPoint)])
        writer.writeheader()
        for point in points:
            writer.writerow(asdict(point))


def plot_task(points: list[SweepPoint], task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_knob, by_time) = plt.subplots(1, 2, figsize=(11, 4.4))
    methods = sorted({p.method for p in points})
    for index, method in enumerate(methods):
        mine = [p for p in points if p.method == method]
        errors = [max(p.rel_error, ERROR_FLOOR) for p in mine]
        seconds = [p.seconds for p in mine]
        color = f"C{index % 10}"
        if mine[0].knob:
            label = f"{method} ({mine[0].knob})"
            by_knob.plot([p.value for p in mine], errors, marker="o", color=color, label=label)
        else:
            label = f"{method} (no knob)"
            by_knob.axhline(errors[0], linestyle="--", color=color, label=label)
        by_time.plot(seconds, errors, marker="o", color=color, label=label)
    for ax, x_label in ((by_knob, "accuracy knob value (inner / CG / Neumann / FP steps)"),
                        (by_time, "seconds per hypergradient (median)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel("relative error vs exact hypergradient")
        ax.grid(alpha=0.3, which="both")
    by_knob.legend(fontsize="small")
    fig.suptitle(f"{task}: hypergradient error vs accuracy knob and vs time at φ₀")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_sweep(registry: Registry, pairs: list[SweepPair], grid: tuple[int, ...],
              repeats: int, out: Path,
              progress: Callable[[str], None] = lambda line: None) -> list[Path]:
    """Measure every pair over the grid and write `sweep.csv` and one figure per task
    under `out`; returns the paths written."""
    points = []
    for pair in pairs:
        progress(f"{pair.method} × {pair.task}")
        points += sweep_pair(registry, pair, grid, repeats)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "sweep.csv"]
    write_csv(points, written[0])
    for task in sorted({p.task for p in points}):
        written.append(out / f"sweep-{task}.png")
        plot_task([p for p in points if p.task == task], task, written[-1])
    return written
