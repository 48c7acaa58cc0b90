"""The benchmark definitions: workloads, method variants, the speed comparisons reported in
reports/PERFORMANCE.md with their targets, and the memory-scaling sweep.

This file (not the engine) names methods and tasks: it is the benchmark's protocol.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchsuite.config import resolve
from benchsuite.data import DATA_ROOT_VARIABLE
from benchsuite.seeding import generator

REPO = Path(__file__).resolve().parent.parent
OMNIGLOT_SMALL = REPO.parent / "shared" / "data" / "omniglot-small"

WORKLOADS = {
    # MLP 1-40-40-1, meta-batch 25, 10 + 10 points, 5 inner steps (issue targets: maml ≥ 4×,
    # fomaml ≥ 8× faster than learn2learn's loop)
    "sinusoid": {"task": "sinusoid", "rounds": 30,
                 "overrides": {"inner_steps": 5, "meta_batch": 25, "shots": 10, "query": 10}},
    # conv-4 (64 filters), 28×28, 5-way 1-shot, 15 queries per class, meta-batch 32, one
    # second-order inner step (issue target: maml ≥ 1.5× faster than learn2learn's loop)
    "omniglot": {"task": "omniglot", "rounds": 7,
                 "overrides": {"filters": 64, "ways": 5, "shots": 1, "query": 15,
                               "meta_batch": 32, "inner_steps": 1}},
}

# name -> (registered method, config overrides)
VARIANTS = {"l2l-maml-first-order": ("l2l-maml", {"first_order": True})}

# (workload, ours, reference, target speed-up or None: reported without a target)
COMPARISONS = [
    ("sinusoid", "maml", "l2l-maml", 4.0),
    ("sinusoid", "fomaml", "l2l-maml-first-order", 8.0),
    ("omniglot", "maml", "l2l-maml", 1.5),
    ("omniglot", "fomaml", "l2l-maml-first-order", None),  # reported, no target
]

# memory / time vs number of inner steps (how each method spells "K inner steps")
SWEEP_STEPS = (1, 2, 5, 10, 20, 50)
SWEEP_METHODS = ("maml", "fomaml", "trhg", "imaml", "reptile")
SWEEP_TASK = "sinusoid"


# 500 support and query points per task: large enough that the per-step activations of
# the unrolled graph stand out of the allocator's noise (with 10 points they are ~0.2 MB).
SWEEP_POINTS = 500


def sweep_overrides(method: str, steps: int) -> dict:
    sizes = {"shots": SWEEP_POINTS, "query": SWEEP_POINTS}
    if method == "reptile":  # full-batch epochs: one step per epoch
        return {**sizes, "inner_epochs": steps, "inner_batch": SWEEP_POINTS}
    return {**sizes, "inner_steps": steps}


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


def synthetic_omniglot(root: Path, characters: int = 30, drawings: int = 20) -> None:
    """Random-stroke 105×105 1-bit PNGs in Omniglot's on-disk layout
    (images_background/<alphabet>/<character>/<drawing>.png): enough characters for 5-way
    episodes in every split, for machines without the real subset."""
    rng = np.random.default_rng(0)
    for c in range(characters):
        folder = root / "images_background" / f"Alphabet{c % 2}" / f"character{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for d in range(drawings):
            ink = rng.random((105, 105)) < 0.1
            Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).convert("1").save(
                folder / f"{c:02d}_{d:02d}.png")


@functools.cache
def data_folder() -> Path:
    """The real Omniglot subset beside the repository when present, else a synthetic tree
    in a temporary folder (made once per process)."""
    if OMNIGLOT_SMALL.is_dir():
        return OMNIGLOT_SMALL
    folder = Path(tempfile.mkdtemp(prefix="benchsuite-omniglot-"))
    synthetic_omniglot(folder)
    return folder


def build_workload(registry, workload: str, method: str, device: str = "cpu") -> BuiltWorkload:
    spec = WORKLOADS[workload]
    if spec["task"] == "omniglot" and DATA_ROOT_VARIABLE not in os.environ:
        os.environ[DATA_ROOT_VARIABLE] = str(data_folder())
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
