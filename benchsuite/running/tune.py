"""`benchsuite tune`: equal-budget tuning of a method's step sizes on validation episodes.

For a (method, task) pair without a paper protocol, every method gets the same budget:
TUNE_BUDGET = 4 configurations, a 2 × 2 grid around the step sizes the trial would use
without tuning (the task's defaults, the method's hyperparameters, the command line):

- implicit methods on meta-initialisation tasks (their config has `proximal_lambda`, and
  only there is the proximal problem their inner problem): inner_lr × {1, 1/4} crossed
  with proximal_lambda × {1, 5};
- every other pair: inner_lr × {1, 1/4} crossed with meta_lr × {1, 3} (DARTS on
  hyper-cleaning keeps a `proximal_lambda` it does not use: tuning it would spend half
  the budget on a key without effect).

"inner_lr" is the inner step size unless the method names its own keys in
`inner_step_keys` (Meta-SGD: the range its learned α starts in); all of them are scaled
together, so no method's budget goes to a key it does not use.

Each grid point is planned by benchsuite.running.planning.plan as settings applied after the
command line's (so everything is validated before anything runs), run × seeds
with benchsuite.running.runner.execute (records are kept, so a re-run resumes) and scored by the
mean over seeds of the last learning-curve point's `val_<metric>`: the task's fixed
validation episodes, never the test episodes. A point with a trial that did not finish,
or a non-finite score, is the worst. The best point wins (ties: the first in grid order,
the untuned one first); it is written to `tuned/<task>.toml` of the protocol folder (the
user's, or --protocols-dir) with the grid, every score and provenance, where
`benchsuite run` then finds it.

TOML is written with tomli-w (tomllib reads only); other methods' tables of the file are
kept.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from tabulate import tabulate

from benchsuite.core.contract import META_INIT, Method
from benchsuite.core.errors import UsageError
from benchsuite.running import planning
from benchsuite.running import protocols as protocol_files
from benchsuite.running.registry import Registry
from benchsuite.storage.records import FINISHED, git_commit, read_record, write_text_atomic

TUNE_BUDGET = 4
"""Configurations tried per (method, task) pair: the same for every method."""
INNER_FACTORS = (1.0, 0.25)
META_FACTORS = (1.0, 3.0)
PROXIMAL_FACTORS = (1.0, 5.0)
TEMPORARY_SUFFIX = ".tmp"  # a protocol file being written (protocols.load reads *.toml)


@dataclass
class TuneJob:
    """The tuning of one (method, task) pair: its grid, the trials of each point, scores."""

    method: str
    task: str
    base: dict[str, Any]
    """The config the trial would run with untuned (seed 0)."""
    keys: tuple[str, ...]
    grid: list[dict[str, float]]
    specs: list[list[planning.TrialSpec]]
    """specs[i]: the trials (one per seed) of grid point i."""
    metric: str
    higher_is_better: bool
    scores: list[float] = field(default_factory=list)
    choice: int | None = None

    @property
    def pair(self) -> str:
        return f"{self.method} × {self.task}"

    @property
    def trials(self) -> list[planning.TrialSpec]:
        return [spec for point in self.specs for spec in point]


def grid_for(config: Mapping[str, Any], task_kind: str,
             inner_keys: tuple[str, ...] = Method.inner_step_keys
             ) -> tuple[tuple[str, ...], list[dict[str, float]]]:
    """The TUNE_BUDGET grid points around `config`'s step sizes, in grid order."""
    proximal = task_kind == META_INIT and "proximal_lambda" in config
    second, factors = (("proximal_lambda", PROXIMAL_FACTORS) if proximal
                       else ("meta_lr", META_FACTORS))
    keys = (*inner_keys, second)
    for key in keys:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"cannot tune {key}: the config has {key} = {value!r}, not a "
                             "number")
    grid = [{**{key: float(config[key]) * a for key in inner_keys},
             second: float(config[second]) * b} for a in INNER_FACTORS for b in factors]
    assert len(grid) == TUNE_BUDGET
    return keys, grid


def plan_tuning(registry: Registry, *, methods: str, tasks: str, seeds: int, budget: str,
                device: str, options: dict[str, Any], set_items: list[str], out: Path,
                protocols: protocol_files.Protocols, device_here: bool = True,
                command: str = "") -> list[TuneJob]:
    """Every pair's grid, planned and validated by benchsuite.running.planning.plan (one grid of
    the whole selection per grid point); nothing is run or written. Named pairs that are
    floors, have a paper protocol or cannot run together are usage errors; with `all`,
    such pairs are left out."""
    method_names = [registry.method(n).cls.name for n in planning.select(
        methods, registry.canonical_methods(), registry.method)]
    method_names = list(dict.fromkeys(method_names))
    task_names = planning.select(tasks, registry.canonical_tasks(), registry.task)
    every = methods.strip() == "all" or tasks.strip() == "all"
    pairs = []
    for task_name in task_names:
        task_cls = registry.task(task_name).cls
        for method_name in method_names:
            method_cls = registry.method(method_name).cls
            reason = _refusal(method_cls, task_cls, protocols, every)
            if reason is None:
                pairs.append((method_name, task_name))
            elif not every:
                raise UsageError(reason)
    if not pairs:
        raise UsageError("nothing to tune: every selected pair is a floor, has a paper "
                         "protocol or cannot run")
    # tuning starts from what the trial runs with untuned: not from an earlier tuning
    untuned = protocol_files.Protocols(
        paper=protocols.paper, named=protocols.named,
        tuned={k: v for k, v in protocols.tuned.items() if k not in pairs})
    common: dict[str, Any] = dict(
        methods=",".join(dict.fromkeys(m for m, _ in pairs)),
        tasks=",".join(dict.fromkeys(t for _, t in pairs)), pairs=set(pairs), budget=budget,
        device=device, options=options, set_items=set_items, out=out,
        device_here=device_here, command=command, protocols=untuned)
    bases = {(s.method, s.task): s for s in planning.plan(registry, seeds=1, **common)}
    grids = {pair: grid_for(base.config, registry.task(pair[1]).cls.kind,
                            registry.method(pair[0]).cls.inner_step_keys)
             for pair, base in bases.items()}
    points = [planning.plan(registry, seeds=seeds, last=_point(grids, index), **common)
              for index in range(TUNE_BUDGET)]
    jobs = []
    for pair in pairs:
        base = bases[pair]
        keys, grid = grids[pair]
        specs = [[s for s in point if (s.method, s.task) == pair] for point in points]
        jobs.append(TuneJob(pair[0], pair[1], base.config, keys, grid, specs,
                            base.objective["metric"], base.objective["higher_is_better"]))
    return jobs


def _point(grids: Mapping[tuple[str, str], tuple[tuple[str, ...], list[dict[str, float]]]],
           index: int) -> Callable[[str, str], dict[str, float]]:
    """The settings of grid point `index` of each pair (planning.plan's `last`)."""
    return lambda method, task: grids[method, task][1][index]


def _refusal(method_cls, task_cls, protocols: protocol_files.Protocols,
             every: bool) -> str | None:
    method, task = method_cls.name, task_cls.name
    if method_cls.is_floor:
        return (f"{method} is a floor baseline (it chooses its own step size on validation); "
                "`benchsuite tune` tunes meta-learning methods")
    if (method, task) in protocols.paper:
        return (f"{method} × {task} has a paper protocol "
                f"({protocols.paper[method, task].source}); tuning is for pairs without one")
    if every and method_cls.incompatibility(task_cls):
        return f"{method} cannot run on {task}"
    return None


def score_point(specs: list[planning.TrialSpec], metric: str) -> float:
    """The mean over seeds of the last curve point's `val_<metric>`; NaN if a trial did not
    finish or has no curve."""
    values = []
    for spec in specs:
        try:
            record = read_record(spec.path)
        except ValueError:
            return math.nan
        curve = record["curve"]
        if record["status"] != FINISHED or not curve:
            return math.nan
        last = max(curve, key=lambda point: point.get("iteration", -1))
        value = last.get(f"val_{metric}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return math.nan
        values.append(float(value))
    return sum(values) / len(values)


def choose(scores: list[float], higher_is_better: bool) -> int | None:
    """The index of the best finite score (the first of equals); None if none is finite."""
    best = None
    for index, score in enumerate(scores):
        if not math.isfinite(score):
            continue
        if best is None or (score > scores[best] if higher_is_better
                            else score < scores[best]):
            best = index
    return best


def score(jobs: list[TuneJob]) -> None:
    for job in jobs:
        job.scores = [score_point(point, job.metric) for point in job.specs]
        job.choice = choose(job.scores, job.higher_is_better)


def tuned_table(job: TuneJob, *, seeds: int, command: str, date: str | None = None,
                commit: str | None = None) -> dict[str, Any]:
    """The protocol table of a scored job (tuned/<task>.toml, `[<method>]`)."""
    assert job.choice is not None
    iterations, episodes = job.base["iterations"], job.base["val_episodes"]
    return {
        "source": (f"benchsuite tune: best of {TUNE_BUDGET} configurations on {episodes} "
                   f"validation episode{'' if episodes == 1 else 's'} after {iterations} "
                   f"iterations, {seeds} seed(s)"),
        "budget": TUNE_BUDGET,
        "metric": f"val_{job.metric}",
        "higher_is_better": job.higher_is_better,
        "iterations": iterations,
        "seeds": seeds,
        "grid": [dict(point) for point in job.grid],
        "scores": list(job.scores),
        "date": date or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": (git_commit() or "") if commit is None else commit,
        "command": command,
        "settings": dict(job.grid[job.choice]),
    }


def write_tuned(root: Path, task: str, tables: Mapping[str, Mapping[str, Any]]) -> Path:
    """Put `tables` (method → protocol table) into `root`/tuned/<task>.toml, keeping the
    file's other tables; atomically (a temporary file renamed over it)."""
    path = Path(root) / "tuned" / f"{task}.toml"
    existing = tomllib.loads(path.read_text()) if path.exists() else {}
    merged = {**existing, **tables}
    text = ("# Tuned protocols for the task " + json.dumps(task) + ", one table per method:"
            " written by `benchsuite tune`\n# (see docs/protocols.md). Edits are kept as "
            "values; comments are not.\n\n" + tomli_w.dumps(merged))
    write_text_atomic(path, text, suffix=TEMPORARY_SUFFIX)
    return path


def choose_and_write(jobs: list[TuneJob], *, root: Path, seeds: int, command: str,
                     echo: Callable[..., None]) -> int:
    """Score the jobs whose trials have run, show the grids and write each pair's best
    point to `root`/tuned/<task>.toml. `echo(text, err=False)` prints. Returns the exit
    status: 0, or 1 when some pair has no finite score (nothing written for it)."""
    score(jobs)
    echo(grid_table(jobs))
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    commit = git_commit() or ""
    tables: dict[str, dict] = {}
    for job in jobs:
        if job.choice is not None:
            tables.setdefault(job.task, {})[job.method] = tuned_table(
                job, seeds=seeds, command=command, date=date, commit=commit)
    for task, task_tables in tables.items():
        path = write_tuned(root, task, task_tables)
        echo(f"wrote {path} ({', '.join(task_tables)})")
    unchosen = [job.pair for job in jobs if job.choice is None]
    if unchosen:
        echo(f"error: no configuration of {', '.join(unchosen)} has a finite validation "
             "score; no protocol written for it", err=True)
        return 1
    return 0


# -- showing --------------------------------------------------------------------------------
def grid_table(jobs: list[TuneJob], *, scored: bool = True) -> str:
    rows = []
    for job in jobs:
        for index, point in enumerate(job.grid):
            row = [job.pair if index == 0 else "",
                   ", ".join(f"{k}={v:g}" for k, v in point.items())]
            if scored:
                value = job.scores[index]
                row += [f"{value:.6g}" if math.isfinite(value) else "worst (not finite or "
                        "unfinished)", "← chosen" if index == job.choice else ""]
            rows.append(row)
    header = ["pair", "configuration"]
    if scored and jobs:
        direction = "higher" if jobs[0].higher_is_better else "lower"
        header += [f"val score (last curve point, seed mean; {direction} is better)"
                   if len({j.higher_is_better for j in jobs}) == 1
                   else "val score (last curve point, seed mean)", "choice"]
    return tabulate(rows, header)
