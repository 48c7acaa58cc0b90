"""The benchmark definitions: workloads, method variants, external references, the
comparisons reported in reports/PERFORMANCE.md with their targets, and both sweeps.

This file (not the engine) names methods and tasks: it is the benchmark's protocol.

Environment knobs (for smoke tests; the defaults are the real benchmark):
  BENCH_ROUNDS=N   cap every timing loop at N rounds (and one warm-up round)
  BENCH_SMOKE=1    tiny meta-batches and sweeps, to check the pipeline end to end
  BENCH_DEVICE=D   cpu (default) or cuda[:N]
  BENCH_OUT=DIR    where `nox -s bench` writes the report (default reports/)
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchsuite.blocks.data import DATA_ROOT_VARIABLE, data_root
from benchsuite.core.execution import chunked_meta_gradient
from benchsuite.core.seeding import generator
from benchsuite.running.compiled import compiled_step
from benchsuite.running.planning import resolve_pair
from benchsuite.running.trial import meta_gradient, set_up

REPO = Path(__file__).resolve().parent.parent
OMNIGLOT_SMALL = REPO.parent / "shared" / "data" / "omniglot-small"

SMOKE = os.environ.get("BENCH_SMOKE", "") == "1"
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")


def rounds(default: int) -> int:
    """`default`, capped by $BENCH_ROUNDS when set."""
    cap = os.environ.get("BENCH_ROUNDS")
    return max(1, min(default, int(cap))) if cap else default


def warmup_rounds(default: int) -> int:
    return min(default, 1) if os.environ.get("BENCH_ROUNDS") else default


# rounds: interleaved comparison rounds (benchmarks/compare.py); table_rounds: pytest-benchmark
# rounds of every method (benchmarks/test_meta_steps.py; 0 = not in that table); meta_chunk:
# our execution path in the comparison (None: the engine's default for the workload);
# contenders: None = ours and the external references (`contenders`), else the only ones
WORKLOADS = {
    # MLP 1-40-40-1, meta-batch 25, 10 + 10 points, 5 inner steps
    "sinusoid": {"task": "sinusoid", "rounds": 30, "table_rounds": 30, "model": "mlp",
                 "meta_chunk": None, "contenders": None,
                 "overrides": {"inner_steps": 5, "meta_batch": 25, "shots": 10, "query": 10}},
    # conv-4 (64 filters), 28×28×1, 5-way 1-shot, 15 queries per class, meta-batch 32, one
    # second-order inner step (MAML's Omniglot protocol)
    "omniglot": {"task": "omniglot", "rounds": 7, "table_rounds": 3, "model": "conv4",
                 "meta_chunk": None, "contenders": None,
                 "overrides": {"filters": 64, "ways": 5, "shots": 1, "query": 15,
                               "meta_batch": 32, "inner_steps": 1}},
    # conv-4 (32 filters), 84×84×3, 5-way 1-shot, 15 queries per class, meta-batch 4, five
    # inner steps (MAML's mini-ImageNet protocol)
    "miniimagenet": {"task": "miniimagenet", "rounds": 3, "table_rounds": 0, "model": "conv4",
                     "meta_chunk": None, "contenders": None,
                     "overrides": {"filters": 32, "ways": 5, "shots": 1, "query": 15,
                                   "meta_batch": 4, "inner_steps": 5}},
    # The compiled path against the eager engine on two launch-bound tasks of the reference
    # grids, on the task's own defaults as those grids run them. No external references:
    # none of the libraries has these tasks, and the target is ours compiled vs ours eager.
    "logistic": {"task": "logistic", "rounds": 30, "table_rounds": 0, "model": "mlp",
                 "meta_chunk": None, "contenders": ("maml", "maml-compiled"),
                 "overrides": {}},
    "hypercleaning": {"task": "hypercleaning", "rounds": 10, "table_rounds": 0,
                      "model": "linear", "meta_chunk": None,
                      "contenders": ("maml", "maml-compiled"), "overrides": {}},
}
if SMOKE:
    for _spec, _batch in zip(WORKLOADS.values(), (5, 2, 2, 2)):
        _spec["overrides"]["meta_batch"] = _batch
    WORKLOADS["miniimagenet"]["overrides"]["inner_steps"] = 2
    WORKLOADS["hypercleaning"]["overrides"]["inner_steps"] = 10

# name -> (registered method, config overrides). The maml-* variants are the engine's
# execution paths side by side (one of them is each workload's default): the measurement
# behind the task defaults (benchsuite.blocks.fewshot.CONV_EXECUTION for the conv tasks, the
# whole meta-batch vmapped for the others).
VARIANTS = {
    "l2l-maml-first-order": ("l2l-maml", {"first_order": True}),
    "maml-per-task": ("maml", {"batching": "loop", "meta_chunk": 1}),
    "maml-vmap-chunks-of-8": ("maml", {"batching": "vmap", "meta_chunk": 8}),
    "maml-vmap-whole-batch": ("maml", {"batching": "vmap", "meta_chunk": 0}),
    # the compiled path (benchsuite.running.compiled), compiled on its first call
    "maml-compiled": ("maml", {"compile": "on"}),
    "fomaml-compiled": ("fomaml", {"compile": "on"}),
}

# External references, written as their users write them (benchmarks/external.py):
# name -> (library, first order?)
REFERENCES = {
    "learn2learn": ("learn2learn", False),
    "learn2learn-first-order": ("learn2learn", True),
    "torchopt": ("torchopt", False),
    "higher": ("higher", False),
    "jax": ("jax", False),
    "jax-first-order": ("jax", True),
}
MLP_ONLY = frozenset({"jax", "maml-compiled", "fomaml-compiled"})
"""Contenders of the MLP workloads only (JAX's reference is written for the MLP; a cold
compile of a conv meta-step takes minutes and barely pays on CPU)."""

# The learn2learn reference each of ours is read against in the comparison tables.
TARGET_REFERENCE = {"maml": "learn2learn", "fomaml": "learn2learn-first-order",
                    "maml-compiled": "learn2learn",
                    "fomaml-compiled": "learn2learn-first-order"}

# (workload, ours, reference, target speed-up: the reference's median time / ours) of issue
# 25; memory target: peak ≤ the reference's on every conv workload
SPEED_TARGETS = [
    ("sinusoid", "maml", "learn2learn", 5.0),
    ("sinusoid", "fomaml", "learn2learn-first-order", 8.0),
    ("sinusoid", "maml-compiled", "learn2learn", 30.0),
    ("sinusoid", "fomaml-compiled", "learn2learn-first-order", 60.0),
    ("omniglot", "maml", "learn2learn", 1.2),
    ("omniglot", "fomaml", "learn2learn-first-order", 1.2),
    ("miniimagenet", "maml", "learn2learn", 1.0),
    ("miniimagenet", "fomaml", "learn2learn-first-order", 1.0),
    # the compiled path against the eager engine ("today's engine")
    ("logistic", "maml-compiled", "maml", 5.0),
    ("hypercleaning", "maml-compiled", "maml", 5.0),
]
# (workload, ours, reference, most times the reference's time): as fast as the fastest
# framework, within a factor
PARITY_TARGETS = [
    ("sinusoid", "maml-compiled", "jax", 1.5),
    ("sinusoid", "fomaml-compiled", "jax-first-order", 1.5),
]
# (workload, ours, least share of the machine's dense fp32 matmul rate): the conv meta-step's
# FLOP rate (FLOPs counted by torch / median time) against the ceiling
CEILING_TARGETS = [
    ("miniimagenet", "maml", 0.45),
    ("miniimagenet", "fomaml", 0.45),
]
CONV_WORKLOADS = tuple(w for w, s in WORKLOADS.items() if s["model"] == "conv4")
REFERENCE_WORKLOADS = tuple(w for w, s in WORKLOADS.items() if s["contenders"] is None)
"""The workloads on which ours meet the external references (the others time ours only)."""

# Contenders of the interleaved comparison on every workload: ours, then the references
# (those whose library imports; second-order ones beside maml, first-order beside fomaml).
OURS = ("maml", "fomaml")
COMPILED = ("maml-compiled", "fomaml-compiled")


def contenders(workload: str | None = None) -> list[str]:
    """Ours and the references whose library imports; on `workload`, those that apply
    (a workload that names its contenders: those)."""
    from benchmarks.external import available

    if workload is not None and WORKLOADS[workload]["contenders"] is not None:
        return list(WORKLOADS[workload]["contenders"])
    names = [*OURS, *COMPILED, *(r for r in REFERENCES if available(REFERENCES[r][0]))]
    if workload is None or WORKLOADS[workload]["model"] == "mlp":
        return names
    return [n for n in names if n not in MLP_ONLY and REFERENCES.get(n, ("",))[0] != "jax"]


# memory / time vs number of inner steps (how each method spells "K inner steps")
SWEEP_STEPS = (1, 2) if SMOKE else (1, 2, 5, 10, 20, 50)
SWEEP_METHODS = ("maml", "fomaml") if SMOKE else ("maml", "fomaml", "trhg", "imaml", "reptile")
SWEEP_TASK = "sinusoid"
SWEEP_ITERATIONS = 3 if SMOKE else 20

# 500 support and query points per task: large enough that the per-step activations of
# the unrolled graph stand out of the allocator's noise (with 10 points they are ~0.2 MB).
SWEEP_POINTS = 50 if SMOKE else 500

# memory / time vs meta-batch size, each point a fresh process: ours one task at a time
# (meta_chunk=1) and learn2learn's per-task loop
BATCH_SWEEP_WORKLOAD = "omniglot"
BATCH_SWEEP_SIZES = (1, 2) if SMOKE else (1, 2, 4, 8, 16, 32)
BATCH_SWEEP_CONTENDERS = ("maml", "fomaml", "learn2learn", "learn2learn-first-order")
BATCH_SWEEP_CHUNK = 1
BATCH_SWEEP_STEPS = 2  # meta-steps per point: one warm-up, one timed (all count for memory)


# iterations of the sinusoid trial whose runner overhead the report states
OVERHEAD_ITERATIONS = 100 if SMOKE else 2000
# per-trial overhead (runner wall-clock − the trial's own total time): the median over
# OVERHEAD_TRIALS short sinusoid trials of OVERHEAD_TRIAL_ITERATIONS iterations, each
# started on its own through the local executor, against the target (issue 25)
OVERHEAD_TRIALS = 3 if SMOKE else 7
OVERHEAD_TRIAL_ITERATIONS = 10
OVERHEAD_TARGET_S = 0.3


def sweep_overrides(method: str, steps: int) -> dict:
    sizes = {"shots": SWEEP_POINTS, "query": SWEEP_POINTS}
    if method == "reptile":  # full-batch steps: each one over the whole support set
        return {**sizes, "inner_steps": steps, "inner_batch": SWEEP_POINTS}
    return {**sizes, "inner_steps": steps}


def execution_overrides(config: dict, meta_chunk: int | None) -> dict:
    """Config keys that run the meta-batch `meta_chunk` tasks at a time (None: the
    workload's own default)."""
    return {} if meta_chunk is None else {"meta_chunk": meta_chunk}


def execution_path(config: dict) -> str:
    """How our meta-step ran, for the report: the config keys that choose it."""
    compiled = ", compiled" if config.get("compile") == "on" else ""
    return f"meta_chunk={config['meta_chunk']}, {config['batching']}{compiled}"


def ours_meta_gradient(built):
    """Our meta-gradient of the built workload's batch, executed as a trial executes it
    (benchsuite.running.trial.meta_gradient: chunks of `meta_chunk` tasks, accumulated),
    under torch.compile when the config says `compile=on` (compiled on the first call)."""
    if built.config.get("compile") != "on":
        return meta_gradient(built.method, built.task, built.phi, built.batch)
    if built.compiled is None:
        built.compiled = compiled_step(built.method, built.task)
    step = built.compiled
    return chunked_meta_gradient(lambda part: step(built.phi, part), built.batch,
                                 built.config["meta_chunk"])


def count(params: dict) -> int:
    return sum(v.numel() for v in params.values())


def model_summary(kind: str, built) -> str:
    """The model of a built workload of model `kind` (WORKLOADS), for the report."""
    phi = built.phi
    if kind == "mlp":
        layers = len(phi) // 2
        widths = [phi["layers.0.weight"].shape[1],
                  *(phi[f"layers.{i}.weight"].shape[0] for i in range(layers))]
        return f"MLP {'-'.join(map(str, widths))}"
    if kind == "conv4":
        channels, height, width = built.batch.support_x.shape[-3:]
        return (f"conv-4, {phi['block0.conv.weight'].shape[0]} filters, "
                f"{height}×{width}×{channels}")
    theta = built.task.initial_theta(phi)
    return f"{kind}: θ of {count(theta)} values, φ of {count(phi)}"


@dataclass
class BuiltWorkload:
    method: object
    task: object
    phi: dict
    batch: object
    config: dict
    compiled: Callable | None = None  # our compiled meta-step, once built


# Left out of the every-method table: baselines that meta-train nothing, so their "meta-step"
# is not a hypergradient's cost, and whose set-up (a step-size search on validation
# episodes) takes longer than all the other methods' meta-steps together.
TABLE_EXCLUDED = frozenset({"scratch", "transfer"})


def workload_methods(registry, workload: str) -> list[str]:
    task_cls = registry.task(WORKLOADS[workload]["task"]).cls
    names = [m for m in registry.canonical_methods() if m not in TABLE_EXCLUDED
             and registry.method(m).cls.incompatibility(task_cls) is None]
    # the compiled variants are timed in the interleaved comparison, after their compile
    return names + [v for v, (base, _) in VARIANTS.items() if base in names
                    and v not in COMPILED]


# -- data: the real sets when present, else synthetic ones in the same on-disk format ---------
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


def synthetic_miniimagenet(root: Path, images_per_class: int = 20,
                           classes: dict[str, int] | None = None) -> None:
    """Random 84×84×3 uint8 images in learn2learn's mini-ImageNet pickle format:
    mini-imagenet-cache-{train,validation,test}.pkl, each a pickled dict with `image_data`
    (N×84×84×3 uint8) and `class_dict` (class name → list of row indices). Few classes per
    split (enough for 5-way episodes with 1 + 15 images per class): the benchmark times
    meta-steps, whose cost does not depend on the pixels."""
    classes = classes or {"train": 10, "validation": 5, "test": 5}
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in classes.items():
        rows = count * images_per_class
        data = {
            "image_data": rng.integers(0, 256, (rows, 84, 84, 3), dtype=np.uint8),
            "class_dict": {f"n{split[:2]}{c:05d}": list(range(c * images_per_class,
                                                              (c + 1) * images_per_class))
                           for c in range(count)},
        }
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as file:
            pickle.dump(data, file, protocol=4)


@functools.cache
def _fallback_folder(task: str) -> Path:
    """A folder holding `task`'s data when the data root has none: the real Omniglot subset
    beside the repository, else synthetic data in a temporary folder (made once per
    process)."""
    if task == "omniglot":
        if OMNIGLOT_SMALL.is_dir():
            return OMNIGLOT_SMALL
        folder = Path(tempfile.mkdtemp(prefix="benchsuite-omniglot-"))
        synthetic_omniglot(folder)
        return folder
    if task == "miniimagenet":
        folder = Path(tempfile.mkdtemp(prefix="benchsuite-miniimagenet-"))
        synthetic_miniimagenet(folder)
        return folder
    raise KeyError(task)


def data_source(task_cls, config) -> tuple[Path | None, str]:
    """Where `task_cls`'s data comes from: (folder to use as the data root or None for a
    task without files, a short description for the report)."""
    if not hasattr(task_cls, "data_problem"):
        return None, "generated"
    root = data_root()
    if DATA_ROOT_VARIABLE in os.environ and task_cls.data_problem(root, config) is None:
        return root, f"data in {root}"
    folder = _fallback_folder(task_cls.name)
    if folder == OMNIGLOT_SMALL:
        return folder, "the real Omniglot subset (../shared/data/omniglot-small)"
    return folder, "synthetic images in the data set's on-disk format"


@contextlib.contextmanager
def data_root_at(folder: Path | None):
    """$BENCHSUITE_DATA set to `folder` for the block (tasks read it when constructed)."""
    if folder is None:
        yield
        return
    saved = os.environ.get(DATA_ROOT_VARIABLE)
    os.environ[DATA_ROOT_VARIABLE] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            del os.environ[DATA_ROOT_VARIABLE]
        else:
            os.environ[DATA_ROOT_VARIABLE] = saved


def build_workload(registry, workload: str, method: str, device: str = DEVICE,
                   overrides: dict | None = None, meta_chunk: int | None = None
                   ) -> BuiltWorkload:
    """Our `method` (a registered name or a VARIANTS name) on `workload`, with φ₀ and one
    training meta-batch drawn from fixed generators: every method and every reference of a
    workload sees the same φ₀ and the same batch tensors. The config is resolved by the
    planner (benchsuite.running.planning.resolve_pair) on the task's defaults, quick budget, with
    the workload's settings, then the variant's, then `overrides`, then `meta_chunk` (the
    execution path; None: the workload's default) as its options, in that order of
    precedence; `eval_inner_steps` follows the resulting `inner_steps`, as in a trial."""
    spec = WORKLOADS[workload]
    base, variant_overrides = VARIANTS.get(method, (method, {}))
    task_cls, method_cls = registry.task(spec["task"]).cls, registry.method(base).cls
    options = {**spec["overrides"], **variant_overrides, **(overrides or {})}
    options.update(execution_overrides(options, meta_chunk))
    config = resolve_pair(registry, base, spec["task"], seed=0, budget="quick", device=device,
                          options=options)
    folder, _ = data_source(task_cls, config)
    with data_root_at(folder):
        built = set_up(method_cls, task_cls, config, init=generator("bench", "init"))
        batch = built.episodes("train", config["meta_batch"], generator("bench", "batch"))
    return BuiltWorkload(built.method, built.task, built.phi, batch, config)
