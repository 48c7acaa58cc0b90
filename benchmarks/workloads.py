"""The benchmark definitions: workloads, method variants, the speed comparisons reported in
reports/PERFORMANCE.md with their targets, and the memory-scaling sweep.

This file (not the engine) names methods and tasks: it is the benchmark's protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchsuite.config import resolve
from benchsuite.seeding import generator

WORKLOADS = {
    # MLP 1-40-40-1, meta-batch 25, 10 + 10 points, 5 inner steps (issue targets: maml ≥ 4×,
    # fomaml ≥ 8× faster than learn2learn's loop)
    "sinusoid": {"task": "sinusoid", "rounds": 30,
                 "overrides": {"inner_steps": 5, "meta_batch": 25, "shots": 10, "query": 10}},
}

# name -> (registered method, config overrides)
VARIANTS = {"l2l-maml-first-order": ("l2l-maml", {"first_order": True})}

# (workload, ours, reference, target speed-up)
COMPARISONS = [
    ("sinusoid", "maml", "l2l-maml", 4.0),
    ("sinusoid", "fomaml", "l2l-maml-first-order", 8.0),
]

# memory / time vs number of inner steps (how each method spells "K inner steps")
SWEEP_STEPS = (1, 2, 5, 10, 20, 50)
SWEEP_METHODS = ("maml", "fomaml", "trhg", "imaml", "reptile")
SWEEP_TASK = "sinusoid"


def sweep_overrides(method: str, steps: int) -> dict:
    if method == "reptile":  # full-batch epochs: one step per epoch
        return {"inner_epochs": steps, "inner_batch": 10}
    return {"inner_steps": steps}


@dataclass
class BuiltWorkload:
    method: object
    task: object
    phi: dict
    batch: object
    config: dict


def workload_methods(registry, workload: str) -> list[str]:
    task_cls = registry.task(WORKLOADS[workload]["task"]).cls
    names = [m for m in registry.canonical_methods()
             if registry.method(m).cls.incompatibility(task_cls) is None]
    return names + [v for v, (base, _) in VARIANTS.items() if base in names]


def build_workload(registry, workload: str, method: str, device: str = "cpu") -> BuiltWorkload:
    spec = WORKLOADS[workload]
    base, variant_overrides = VARIANTS.get(method, (method, {}))
    task_cls, method_cls = registry.task(spec["task"]).cls, registry.method(base).cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device=device, options={},
                     overrides=[])
    config.update(spec["overrides"], **variant_overrides)
    task = task_cls(config, torch.device(device))
    method_obj = method_cls(config)
    phi = {k: v.to(device) for k, v in
           method_obj.init_meta_params(task, generator("bench", "init")).items()}
    batch = task.sample_batch("train", config["meta_batch"],
                              generator("bench", "batch")).to(device)
    return BuiltWorkload(method_obj, task, phi, batch, config)
