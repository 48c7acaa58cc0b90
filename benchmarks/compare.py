"""Ours against the external references: one interleaved timing run per workload (every
contender's meta-step alternated round by round in one process, so drifts of a shared,
noisy machine hit all of them alike), and peak meta-training memory, each (workload,
contender[, meta-batch]) measured in a fresh process.

    python -m benchmarks.compare measure --workload omniglot --contender maml --meta-batch 8

prints one JSON line (the worker the memory measurements start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.external import build_reference
from benchmarks.workloads import (
    COMPILED,
    DEVICE,
    OURS,
    REFERENCES,
    REPO,
    WORKLOADS,
    BuiltWorkload,
    build_workload,
    execution_path,
    model_summary,
    ours_meta_gradient,
    rounds,
    warmup_rounds,
)
from benchsuite.running.measure import MemoryMeter, synchronize


@dataclass
class Contender:
    name: str
    step: Callable[[], tuple[list[torch.Tensor], float]]
    built: BuiltWorkload
    first_order: bool
    path: str  # how it ran: our execution path, or the reference's library


def is_reference(name: str) -> bool:
    return name in REFERENCES


def prepare(registry, workload: str, name: str, meta_batch: int | None = None,
            meta_chunk: int | None = None) -> Contender:
    """A zero-argument meta-step of contender `name` (one of ours or a reference) on
    `workload`, on the workload's φ₀ and batch (of `meta_batch` tasks when given)."""
    overrides = {"meta_batch": meta_batch} if meta_batch else {}
    if meta_chunk is None:
        meta_chunk = WORKLOADS[workload]["meta_chunk"]
    if is_reference(name):
        library, first_order = REFERENCES[name]
        built = build_workload(registry, workload, "fomaml" if first_order else "maml",
                               overrides=overrides)
        return Contender(name, build_reference(library, built, first_order), built,
                         first_order, library)
    built = build_workload(registry, workload, name, overrides=overrides, meta_chunk=meta_chunk)
    keys = list(built.phi)

    def step():
        result = ours_meta_gradient(built)
        return [result.grads[k] for k in keys], result.outer_loss

    return Contender(name, step, built, built.method.first_order,
                     execution_path(built.config))


def timed_call(step: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds `step()` takes on `device` (its queued work included), and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = step()
    synchronize(device)
    return time.perf_counter() - start, result


def timed(contender: Contender) -> tuple[float, list[torch.Tensor], float]:
    seconds, (grads, loss) = timed_call(contender.step, contender.built.batch.support_x.device)
    return seconds, grads, loss


def relative_difference(grads: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """‖g − g_ref‖ / ‖g_ref‖ over all meta-parameters together."""
    diff = sum(float(((g.detach().double() - r.detach().double()) ** 2).sum())
               for g, r in zip(grads, reference))
    norm = sum(float((r.detach().double() ** 2).sum()) for r in reference)
    return (diff / norm) ** 0.5 if norm else float("nan")


def interleaved(registry, workload: str, names: list[str], count_flops: bool) -> dict:
    """Time every contender on `workload` in this process, alternating them round by round
    (the order rotates each round). The first call of each is a warm-up; with
    `count_flops` it runs under torch's FLOP counter. Returns per contender the times, the
    FLOPs of one meta-step, the outer loss and the relative difference of its meta-gradient
    from ours of the same order (maml for second-order references, fomaml for first-order)."""
    contenders = [prepare(registry, workload, n) for n in names]
    results = {c.name: {"times": [], "first_order": c.first_order} for c in contenders}
    first_grads = {}
    for c in contenders:
        start = time.perf_counter()  # the first call compiles the compiled contenders
        if count_flops:
            with FlopCounterMode(display=False) as counter:
                grads, loss = c.step()
            results[c.name]["flops"] = counter.get_total_flops()
        else:
            grads, loss = c.step()
        results[c.name]["first_call_s"] = time.perf_counter() - start
        first_grads[c.name] = [g.detach().clone() for g in grads]
        results[c.name]["outer_loss"] = loss
        results[c.name]["path"] = c.path
        batch = c.built.batch  # tasks, support and query examples per task
        results[c.name]["meta_batch"] = [len(batch), batch.support_x.shape[1],
                                         batch.query_x.shape[1]]
        results[c.name]["inner_steps"] = c.built.config["inner_steps"]
        results[c.name]["model"] = model_summary(WORKLOADS[workload]["model"], c.built)
    for _ in range(warmup_rounds(1)):
        for c in contenders:
            timed(c)
    for r in range(rounds(WORKLOADS[workload]["rounds"])):
        for c in contenders[r % len(contenders):] + contenders[:r % len(contenders)]:
            results[c.name]["times"].append(timed(c)[0])
    for name, entry in results.items():
        ours = "fomaml" if entry["first_order"] else "maml"
        if name != ours and ours in first_grads:
            entry["grad_rel_diff_vs"] = ours
            entry["grad_rel_diff"] = relative_difference(first_grads[name], first_grads[ours])
        entry["median_s"] = statistics.median(entry["times"])
        quartiles = (statistics.quantiles(entry["times"], n=4) if len(entry["times"]) > 1
                     else [entry["median_s"]] * 3)
        entry["iqr_s"] = quartiles[2] - quartiles[0]
    return results


# -- peak memory in fresh processes -----------------------------------------------------------
def measure_here(registry, workload: str, name: str, meta_batch: int | None,
                 meta_chunk: int | None, steps: int) -> dict:
    """Peak meta-training memory and time of `steps` meta-steps in this process: the meter
    starts after the workload (task, data, φ₀, batch, the reference's module) is built."""
    contender = prepare(registry, workload, name, meta_batch, meta_chunk)
    device = contender.built.batch.support_x.device
    meter = MemoryMeter(device)
    times = [timed(contender)[0] for _ in range(steps)]
    memory = meter.result()
    return {"workload": workload, "contender": name,
            "meta_batch": contender.built.config["meta_batch"], "path": contender.path,
            "peak_bytes": memory["peak_bytes"], "memory_method": memory["method"],
            "times": times, "time_s": statistics.median(times[1:] or times)}


def measure_fresh(workload: str, name: str, meta_batch: int | None = None,
                  meta_chunk: int | None = None, steps: int = 2, timeout: float = 900) -> dict:
    """`measure_here` in a fresh Python process (nothing of earlier measurements resident)."""
    command = [sys.executable, "-m", "benchmarks.compare", "measure", "--workload", workload,
               "--contender", name, "--steps", str(steps)]
    if meta_batch is not None:
        command += ["--meta-batch", str(meta_batch)]
    if meta_chunk is not None:
        command += ["--meta-chunk", str(meta_chunk)]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "BENCH_DEVICE": DEVICE})
    except subprocess.TimeoutExpired:
        return {"workload": workload, "contender": name, "meta_batch": meta_batch,
                "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"workload": workload, "contender": name, "meta_batch": meta_batch,
                "error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    measure = sub.add_parser("measure", help="peak memory and time of one contender, here")
    measure.add_argument("--workload", required=True, choices=list(WORKLOADS))
    measure.add_argument("--contender", required=True, choices=[*OURS, *COMPILED, *REFERENCES])
    measure.add_argument("--meta-batch", type=int)
    measure.add_argument("--meta-chunk", type=int)
    measure.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    from benchsuite.running.registry import discover

    print(json.dumps(measure_here(discover(), args.workload, args.contender, args.meta_batch,
                                  args.meta_chunk, args.steps)))


if __name__ == "__main__":
    main()
