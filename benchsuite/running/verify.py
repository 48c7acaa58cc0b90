"""`benchsuite verify`: re-run stored trials and check that their numbers come back.

A record holds its trial's whole config, the hashes of the plugin code that produced it and
the environment it ran in, so it can be repeated exactly. Each chosen record is re-run in
this process with the record's torch thread count.

  shortened  (default) trains only up to the record's first learning-curve point after the
             start — with the full trial's learning-rate schedule, so it is exactly the
             beginning of that trial — and compares the curve up to there.
  full       (--full) repeats the whole trial and compares the curve and every test metric.

Verdicts: `identical` — every compared number equal bit for bit, which CPU runs must give
when the environment matches (same PyTorch, package versions, CPU model and threads);
`within CI` — the environment differs and every compared metric lies within the stored
95% confidence half-width (full) or the re-run's validation-metric CI (shortened) of the
stored value; `MISMATCH` otherwise. A record whose plugin source has changed since it was
written cannot be checked (`stale`), and neither can one whose data is absent (`skipped`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchsuite.running.planning import rerun_config
from benchsuite.running.registry import Registry, changed_code
from benchsuite.running.trial import run_trial
from benchsuite.storage.records import FINISHED, provenance
from benchsuite.storage.results import read_records

ENVIRONMENT_KEYS = ("torch", "numpy", "pillow", "device_name", "gpu_driver", "cuda_version",
                    "cudnn_version")
SAMPLES = ("one-per-task", "all")
FAILING = ("MISMATCH", "stale", "failed")  # verdicts (Verdict.result), not record statuses


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
        return [r["task"], r["method"], r["seed"], self.check, self.environment,
                self.result + (f": {self.detail}" if self.detail else ""),
                f"{self.seconds:.1f}"]


HEADER = ["task", "method", "seed", "re-run", "environment", "result", "s"]


def choose(records: list[dict], sample: str) -> list[dict]:
    """`all` finished records, or per task the one that is cheapest to re-run."""
    finished = [r for r in records if r["status"] == FINISHED]
    if sample == "all":
        return sorted(finished, key=lambda r: (r["task"], r["method"], r["seed"]))
    cheapest: dict[str, dict] = {}
    for record in sorted(finished, key=lambda r: (r["method"], r["seed"])):
        best = cheapest.get(record["task"])
        if best is None or shortened_cost(record) < shortened_cost(best):
            cheapest[record["task"]] = record
    return [cheapest[task] for task in sorted(cheapest)]


def shortened_cost(record: dict) -> float:
    return (record["timing"].get("per_iteration_mean_s") or math.inf) * shortened_length(record)


def shortened_length(record: dict) -> int:
    """Meta-iterations up to the first curve point after the start (all of them if none)."""
    later = [p["iteration"] for p in record["curve"] if p["iteration"] > 0]
    return min(later) if later else record["config"]["iterations"]


def environment_difference(stored: dict, here: dict) -> list[str]:
    return [f"{key} {stored[key]} here {here.get(key)}" for key in ENVIRONMENT_KEYS
            if key in stored and stored[key] != here.get(key)]


def verify(record: dict, registry: Registry, full: bool) -> Verdict:
    method, task = registry.methods.get(record["method"]), registry.tasks.get(record["task"])
    if method is None or task is None:
        return Verdict(record, "–", "–", "stale", "its method or task no longer exists")
    changed = changed_code(record["code"], method, task)
    if changed:
        return Verdict(record, "–", "–", "stale",
                       f"{' and '.join(changed)} code changed since the record was written; "
                       "re-run it")
    config = rerun_config(record)
    missing_data = task.cls.check_data(config)
    if missing_data:
        return Verdict(record, "–", "–", "skipped", missing_data)

    total = config["iterations"]
    stop_after = None if full or shortened_length(record) >= total else shortened_length(record)
    check = (f"all {total} iterations" if stop_after is None
             else f"first {stop_after} of {total} iterations (shortened)")
    stored_env = record["provenance"]
    threads = stored_env.get("torch_threads") or torch.get_num_threads()
    differences = environment_difference(stored_env, provenance(torch.device(config["device"])))
    if config["device"] != record["config"]["device"]:
        differences.insert(0, f"device {record['config']['device']} here cpu")
    environment = "same" if not differences else "; ".join(differences)

    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rerun = run_trial(method.cls, task.cls, config, stop_after=stop_after)
    except Exception as error:  # a verification that cannot run is a failed verification
        return Verdict(record, check, environment, "failed", f"{type(error).__name__}: {error}",
                       time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous_threads)
    seconds = time.perf_counter() - started
    metric = record["objective"]["metric"]
    compared = compared_numbers(record, rerun, metric, stop_after)
    differing = [name for name, (stored, new, _) in compared.items()
                 if not same_number(stored, new)]
    if not differing:
        return Verdict(record, check, environment, "identical",
                       f"{len(compared)} numbers", seconds)
    if not differences:
        return Verdict(record, check, environment, "MISMATCH",
                       f"same environment, {len(differing)} of {len(compared)} numbers "
                       f"differ (first: {describe(differing[0], compared[differing[0]])})",
                       seconds)
    outside = [name for name, (stored, new, ci) in compared.items()
               if ci is not None and not abs(new - stored) <= ci]
    if outside:
        return Verdict(record, check, environment, "MISMATCH",
                       f"{describe(outside[0], compared[outside[0]])} is outside the CI",
                       seconds)
    return Verdict(record, check, environment, "within CI",
                   f"{len(differing)} of {len(compared)} numbers differ, all within CI", seconds)


def compared_numbers(record: dict, rerun: dict, metric: str,
                     stop_after: int | None) -> dict[str, tuple[float, float, float | None]]:
    """name → (stored, re-run, tolerance where the environment differs (None: compared
    only for bit-identity))."""
    numbers = {}
    rerun_curve = {p["iteration"]: p for p in rerun["curve"]}
    for point in record["curve"]:
        new = rerun_curve.get(point["iteration"])
        if new is None:
            continue
        val = f"val_{metric}"
        numbers[f"curve[{point['iteration']}].{val}"] = (
            point[val], new[val], None if stop_after is None else new.get(f"{val}_ci95"))
        if point.get("train_outer_loss") is not None:
            numbers[f"curve[{point['iteration']}].train_outer_loss"] = (
                point["train_outer_loss"], new["train_outer_loss"], None)
    if stop_after is None:
        for key, stored in record["metrics"].items():
            if isinstance(stored, (int, float)) and key in rerun["metrics"]:
                numbers[key] = (stored, rerun["metrics"][key],
                                record["metrics"].get(f"{key}_ci95"))
    return numbers


def same_number(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


def describe(name: str, numbers: tuple[float, float, float | None]) -> str:
    stored, new, _ = numbers
    return f"{name} stored {stored!r}, re-run {new!r}"


def verify_folder(results: Path, registry: Registry, sample: str, full: bool,
                  progress) -> tuple[list[Verdict], list[str]]:
    records, warnings = read_records(results)
    verdicts = []
    for record in choose(records, sample):
        progress(f"verifying {record['method']} × {record['task']} (seed {record['seed']})")
        verdicts.append(verify(record, registry, full))
    return verdicts, warnings
