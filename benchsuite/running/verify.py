"""`benchsuite verify`: re-run stored trials and check that every number a report prints
comes back.

A record holds its trial's whole config, the hashes of the plugin code that produced it and
the environment it ran in, so it can be repeated exactly. Each chosen record is first
checked against itself (its id is the hash of its method, task, config and code, so an
edited config or code identity shows; a record that did not finish holds no measurements),
then re-run in this process with the record's torch thread count.

  full   (the default) repeats the whole trial and compares its status (a diverged record
         must diverge again), the learning curve (every point: the validation metric, its
         interval and the training loss), and every test metric: each step count's mean,
         interval, std, count, median, IQM and diverged fraction, the per-episode scores,
         the hypergradient fidelity and the task's and method's final metrics.
  quick  (--quick) trains only up to the record's first learning-curve point after the
         start — with the full trial's learning-rate schedule, so it is exactly the
         beginning of that trial — and compares the curve up to there. It does not check
         the test metrics, the per-episode scores, the rest of the curve or a divergence,
         and says so.

Timing and memory are properties of the machine and the load, not of the trial: they are
never compared.

Verdicts: `identical` — every compared number equal bit for bit, which a re-run must give
when the environment matches (ENVIRONMENT_KEYS: package versions, the CPU model or the
GPU, driver, CUDA and cuDNN; and the record's thread count); `within CI` — the environment
differs and every number with an interval lies within the stored 95% half-width of the
stored value (numbers without one are compared for identity only, and the detail counts
them); `MISMATCH` otherwise, or when the record contradicts itself. A record whose code
has changed since it was written cannot be checked (`stale`), nor one whose data is absent
or that did not run to an end here (`skipped`: failed, oom and timeout records depend on
the machine that ran them).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchsuite.running.config import trial_id
from benchsuite.running.planning import rerun_config
from benchsuite.running.registry import Registry, changed_code
from benchsuite.running.trial import Diverged, run_trial
from benchsuite.storage import reproducibility
from benchsuite.storage.records import DIVERGED, FINISHED, provenance
from benchsuite.storage.results import read_records

ENVIRONMENT_KEYS = ("torch", "numpy", "pillow", "device_name", "gpu_driver", "cuda_version",
                    "cudnn_version")
SAMPLES = ("one-per-task", "all")
FAILING = ("MISMATCH", "stale", "failed")  # verdicts (Verdict.result), not record statuses
RERUN_STATUSES = (FINISHED, DIVERGED)
"""Statuses a re-run reproduces; the others depend on the machine (a timeout, an OOM)."""
SCORE_SUFFIXES = ("_ci95", "_std", "_median", "_iqm")
"""A test metric's companions compared within its interval; `_n` must be equal anywhere,
`_diverged` (a fraction of episodes) is compared for identity."""
QUICK_SKIPS = ("the test metrics", "the per-episode scores", "the curve after its first "
               "point", "diverged records")


@dataclass
class Verdict:
    record: dict
    check: str          # what was re-run
    environment: str    # "same" or what differs
    result: str         # identical | within CI | MISMATCH | stale | skipped | failed
    detail: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.result not in FAILING

    def row(self) -> list:
        r = self.record
        return [r["task"], r["method"], r["seed"], r["status"], self.check, self.environment,
                self.result + (f": {self.detail}" if self.detail else ""),
                f"{self.seconds:.1f}"]


HEADER = ["task", "method", "seed", "status", "re-run", "environment", "result", "s"]


def choose(records: list[dict], sample: str, quick: bool = False) -> list[dict]:
    """Which records to check: with `all`, every record (quick: every finished one); else
    per task the finished record that is cheapest to re-run."""
    if sample == "all":
        chosen = [r for r in records if r["status"] == FINISHED or not quick]
        return sorted(chosen, key=lambda r: (r["task"], r["method"], r["seed"]))
    cheapest: dict[str, dict] = {}
    for record in sorted((r for r in records if r["status"] == FINISHED),
                         key=lambda r: (r["method"], r["seed"])):
        best = cheapest.get(record["task"])
        if best is None or rerun_cost(record, quick) < rerun_cost(best, quick):
            cheapest[record["task"]] = record
    return [cheapest[task] for task in sorted(cheapest)]


def rerun_cost(record: dict, quick: bool) -> float:
    iterations = shortened_length(record) if quick else record["config"]["iterations"]
    return (record["timing"].get("per_iteration_mean_s") or math.inf) * iterations


def shortened_length(record: dict) -> int:
    """Meta-iterations up to the first curve point after the start (all of them if none)."""
    later = [p["iteration"] for p in record["curve"] if p["iteration"] > 0]
    return min(later) if later else record["config"]["iterations"]


def environment_difference(stored: dict, here: dict) -> list[str]:
    return [f"{key} {stored[key]} here {here.get(key)}" for key in ENVIRONMENT_KEYS
            if key in stored and stored[key] != here.get(key)]


def contradiction(record: dict) -> str | None:
    """Why the record cannot be what its trial wrote (it was edited), or None."""
    if trial_id(record["method"], record["task"], record["config"], record["code"]) != (
            record["id"]):
        return ("its id is not the hash of its method, task, config and code: one of them "
                "was edited after the trial ran")
    if record["config"].get("seed") != record["seed"]:
        return f"seed {record['seed']} but its config says {record['config'].get('seed')}"
    if record["status"] != FINISHED and (record["metrics"] or record["curve"]):
        return f"status {record['status']} but it holds a finished trial's measurements"
    return None


def verify(record: dict, registry: Registry, quick: bool = False) -> Verdict:
    problem = contradiction(record)
    if problem:
        return Verdict(record, "–", "–", "MISMATCH", problem)
    method, task = registry.methods.get(record["method"]), registry.tasks.get(record["task"])
    if method is None or task is None:
        return Verdict(record, "–", "–", "stale", "its method or task no longer exists")
    changed = changed_code(record["code"], method, task)
    if changed:
        return Verdict(record, "–", "–", "stale",
                       f"{' and '.join(changed)} code changed since the record was written; "
                       "re-run it")
    if record["status"] not in RERUN_STATUSES:
        return Verdict(record, "–", "–", "skipped", f"a {record['status']} record depends "
                       "on the machine that ran it; `benchsuite run` runs it again")
    config = rerun_config(record)
    missing_data = task.cls.check_data(config)
    if missing_data:
        return Verdict(record, "–", "–", "skipped", missing_data)

    total = config["iterations"]
    stop_after = shortened_length(record) if quick else None
    if stop_after is not None and stop_after >= total:
        stop_after = None
    check = (f"all {total} iterations" if stop_after is None
             else f"first {stop_after} of {total} iterations (quick)")
    stored_env = record["provenance"]
    threads = stored_env.get("torch_threads") or torch.get_num_threads()
    differences = environment_difference(stored_env, provenance(torch.device(config["device"])))
    if config["device"] != record["config"]["device"]:
        differences.insert(0, f"device {record['config']['device']} here {config['device']}")
    elif config["device"].startswith("cuda") and not reproducibility.wants_determinism(config):
        differences.insert(0, "nondeterministic CUDA trial")  # held to the intervals only
    environment = "same" if not differences else "; ".join(differences)

    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rerun: dict[str, Any] = {"metrics": {}, "curve": []}
    try:
        rerun = run_trial(method.cls, task.cls, config, stop_after=stop_after)
        status, error = FINISHED, None
    except Diverged as diverged:
        status, error = DIVERGED, str(diverged)
    except Exception as failure:  # a verification that cannot run is a failed verification
        return Verdict(record, check, environment, "failed",
                       f"{type(failure).__name__}: {failure}", time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous_threads)
    seconds = time.perf_counter() - started
    if status != record["status"]:
        return Verdict(record, check, environment, "MISMATCH",
                       f"status stored {record['status']}, re-run {status}"
                       + (f" ({error})" if error else ""), seconds)
    if status == DIVERGED:
        if error != record["error"] and not differences:
            return Verdict(record, check, environment, "MISMATCH",
                           f"diverged differently: stored {record['error']!r}, re-run "
                           f"{error!r}", seconds)
        return Verdict(record, check, environment, "identical" if error == record["error"]
                       else "within CI", "diverged again", seconds)
    return judge(record, check, environment, bool(differences),
                 compared_numbers(record, rerun, record["objective"]["metric"],
                                  stop_after is not None), seconds)


Numbers = dict[str, tuple[Any, Any, float | None]]


def judge(record: dict, check: str, environment: str, elsewhere: bool, compared: Numbers,
          seconds: float) -> Verdict:
    """The verdict on the compared numbers: all equal, or (in another environment) all
    with an interval inside it."""
    differing = [name for name, (stored, new, _) in compared.items()
                 if not same_number(stored, new)]
    if not differing:
        return Verdict(record, check, environment, "identical", f"{len(compared)} numbers",
                       seconds)
    if not elsewhere:
        return Verdict(record, check, environment, "MISMATCH",
                       f"same environment, {len(differing)} of {len(compared)} numbers "
                       f"differ (first: {describe(differing[0], compared[differing[0]])})",
                       seconds)
    outside = [name for name in differing if not within(*compared[name])]
    if outside:
        return Verdict(record, check, environment, "MISMATCH",
                       f"{describe(outside[0], compared[outside[0]])} is outside the CI",
                       seconds)
    unchecked = sum(1 for name in differing if compared[name][2] is None)
    return Verdict(record, check, environment, "within CI",
                   f"{len(differing)} of {len(compared)} numbers differ, all within CI"
                   + (f" ({unchecked} without an interval, not comparable across "
                      "environments)" if unchecked else ""), seconds)


def within(stored: Any, new: Any, tolerance: float | None) -> bool:
    """Whether a number re-run in another environment agrees with the stored one: within
    `tolerance` (0: must be equal); one without a tolerance cannot be held to one. A
    number missing on either side never agrees."""
    if stored is None or new is None:
        return False
    if tolerance is None:
        return True
    if not (isinstance(stored, (int, float)) and isinstance(new, (int, float))):
        return False
    return abs(new - stored) <= tolerance


def compared_numbers(record: dict, rerun: dict, metric: str, quick: bool) -> Numbers:
    """name → (stored, re-run, tolerance in another environment: the stored 95% half-width,
    0 for counts, None for numbers compared for identity only). A number present on one
    side only is compared with None, so it differs."""
    numbers: Numbers = {}
    val = f"val_{metric}"
    stored_curve = {p["iteration"]: p for p in record["curve"]}
    rerun_curve = {p["iteration"]: p for p in rerun["curve"]}
    iterations = sorted(set(stored_curve) | set(rerun_curve))
    if quick:
        iterations = [i for i in iterations if i in rerun_curve]
    for iteration in iterations:
        stored, new = stored_curve.get(iteration, {}), rerun_curve.get(iteration, {})
        interval = stored.get(f"{val}_ci95")
        for key, tolerance in ((val, interval), (f"{val}_ci95", interval),
                               ("train_outer_loss", None)):
            numbers[f"curve[{iteration}].{key}"] = (stored.get(key), new.get(key),
                                                    tolerance)
    if quick:
        return numbers
    stored_metrics, rerun_metrics = record["metrics"], rerun["metrics"]
    for key in sorted(set(stored_metrics) | set(rerun_metrics)):
        stored, new = stored_metrics.get(key), rerun_metrics.get(key)
        if key == "episode_scores":
            for steps in sorted(set(stored or {}) | set(new or {})):
                numbers[f"episode_scores[{steps}]"] = ((stored or {}).get(steps),
                                                       (new or {}).get(steps), None)
            continue
        numbers[key] = (stored, new, metric_tolerance(key, stored_metrics))
    return numbers


def metric_tolerance(key: str, metrics: dict) -> float | None:
    """How far a test metric may move in another environment: its (or, for a companion,
    its mean's) stored 95% half-width; 0 for an episode count."""
    if key.endswith("_n"):
        return 0.0
    for suffix in ("", *SCORE_SUFFIXES):
        if key.endswith(suffix) and f"{key.removesuffix(suffix)}_ci95" in metrics:
            interval = metrics[f"{key.removesuffix(suffix)}_ci95"]
            return interval if isinstance(interval, (int, float)) else None
    return None


def same_number(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


def describe(name: str, numbers: tuple[Any, Any, float | None]) -> str:
    stored, new, _ = numbers
    shown = [value if not isinstance(value, str) else f"{value[:12]}…"
             for value in (stored, new)]
    return f"{name} stored {shown[0]!r}, re-run {shown[1]!r}"


def verify_folder(results: Path, registry: Registry, sample: str, quick: bool,
                  progress) -> tuple[list[Verdict], list[str]]:
    records, warnings = read_records(results)
    verdicts = []
    for record in choose(records, sample, quick):
        progress(f"verifying {record['method']} × {record['task']} (seed {record['seed']})")
        verdicts.append(verify(record, registry, quick))
    return verdicts, warnings
