"""One trial: meta-train a method on a task for one seed, evaluate it on the task's fixed
test episodes, and measure time and memory. Returns the record's measured parts.

Seeds are derived from the task name and the trial seed only (never the method), so for a
given seed every method starts from the same φ₀, sees the same sequence of training
meta-batches (at equal meta-batch size) and is scored on the same test episodes.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch._dynamo  # noqa: F401  (see below)

from benchsuite.core import statistics as stats
from benchsuite.core.contract import EpisodeBatch, MetaGradient, Method, Params, Task, task_part
from benchsuite.core.execution import chunked_meta_gradient, describe
from benchsuite.core.functional import flatten, over_tasks
from benchsuite.core.seeding import derive_seed, generator
from benchsuite.running.compiled import MetaStepPath
from benchsuite.running.measure import Clock, MemoryMeter
from benchsuite.storage import reproducibility

# Building the first torch optimiser imports torch._dynamo (about 870 modules, 1-2 s on
# this machine's CPUs). Imported here, that happens when a worker starts, not inside the
# trial's wall-clock, where it was 14% of a 2000-iteration sinusoid trial.


@dataclass(frozen=True)
class Event:
    """One moment of a trial's training, as `run_trial` reports it to its observer.

    kind: "iteration" (a meta-step ended: `values` holds its outer loss, its seconds
    `step_s`, None for the step that compiled, whose seconds are `compile_s`) or "curve"
    (a learning-curve point: `values` is the curve row the record keeps).
    iteration: the meta-iteration (0 for the curve point before training).
    iterations: how many the trial trains.
    elapsed_s: seconds since the trial started."""

    kind: str
    iteration: int
    iterations: int
    elapsed_s: float
    values: dict[str, Any]


Observer = Callable[[Event], None]


def _ignore(event: Event) -> None:
    return None


class Diverged(RuntimeError):
    """The meta-objective or its hypergradient became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def make_optimizer(config: dict, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The optimiser on φ that the config's engine Settings name (benchsuite.running.config)."""
    kind = config["meta_optimizer"]
    eps = {} if kind == "sgd" else {"eps": config["meta_adam_eps"]}
    return OPTIMIZERS[kind](params, lr=config["meta_lr"],
                            weight_decay=config["meta_weight_decay"], **eps)


def make_schedule(config: dict, optimizer: torch.optim.Optimizer):
    """The rate's schedule over the trial's iterations (None: constant), stepped once per
    meta-iteration."""
    total = max(1, config["iterations"])
    if config["meta_lr_schedule"] == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: 1 - done / total)
    if config["meta_lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return None


def summarize(values: torch.Tensor) -> dict[str, float]:
    """Mean, standard deviation, count and 95% normal confidence half-width."""
    values = values.double().flatten()
    n = values.numel()
    std = float(values.std(unbiased=True)) if n > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "n": n,
            "ci95": 1.96 * std / math.sqrt(n) if n > 1 else float("nan")}


def episode_scores(method: Method, task: Task, phi: Params, episodes: EpisodeBatch,
                   steps: int, config: dict) -> torch.Tensor:
    """Per-episode mean of the task metric after `steps` test-time adaptation steps.
    A task with a single test episode is scored per query example instead.

    Runs without autograd recording at this level: adaptation takes its inner gradients
    with torch.func (which records only inside each step), so no graph outlives a step,
    and at most `eval_chunk` episodes are in memory at once."""
    def score_one(phi, sx, sy, qx, qy):
        theta = method.adapt(task, phi, sx, sy, steps)
        return method.score(task, phi, theta, qx, qy)

    randomness = "different" if method.adapts_randomly else "error"
    chunks = []
    for start in range(0, len(episodes), config["eval_chunk"]):
        chunk = episodes.slice(start, start + config["eval_chunk"])
        with torch.no_grad():
            chunk_scores = over_tasks(score_one, config["batching"], randomness)(
                phi, *chunk.tensors())
        chunks.append(chunk_scores.detach())
    scores = torch.cat(chunks)
    return scores.flatten() if len(episodes) == 1 else scores.mean(dim=1)


def hypergradient_fidelity(method: Method, task: Task, phi: Params,
                           batch: EpisodeBatch) -> dict[str, float]:
    """Cosine and relative error of the method's hypergradient against the task's exact
    one, at φ₀ on a fixed meta-batch (the same point for every method)."""
    exact = task.exact_hypergradient(phi, batch)
    if exact is None:
        return {}
    return compare_hypergradients(meta_gradient(method, task, phi, batch).grads, exact)


def meta_gradient(method: Method, task: Task, phi: Params, batch: EpisodeBatch) -> MetaGradient:
    """The method's hypergradient on a meta-batch, executed in chunks of the config's
    `meta_chunk` tasks (benchsuite.core.execution)."""
    return chunked_meta_gradient(lambda part: method.meta_gradient(task, phi, part), batch,
                                 method.config["meta_chunk"])


def compare_hypergradients(estimate: Params, exact: Params) -> dict[str, float]:
    """Relative error and cosine of `estimate` against `exact`, over exact's keys."""
    e = flatten({k: estimate[k] for k in exact}).double()
    x = flatten(exact).double()
    return {"hypergrad_rel_error": float((e - x).norm() / x.norm()),
            "hypergrad_cosine": float(e @ x / (e.norm() * x.norm()).clamp_min(1e-300))}


@dataclass(frozen=True)
class SetUp:
    """What a trial is built from its config: the task, the method, and φ₀ on the
    config's device."""

    task: Task
    method: Method
    phi: Params

    def episodes(self, split: str, size: int, gen: torch.Generator) -> EpisodeBatch:
        """`size` episodes of `split` drawn with `gen`, on the trial's device."""
        return self.task.sample_batch(split, size, gen).to(self.task.device)


def set_up(method_cls: type[Method], task_cls: type[Task], config: dict[str, Any],
           init: torch.Generator) -> SetUp:
    """The task and the method built from `config` on its device, and φ₀ drawn with the
    generator `init`: how every trial starts, and what the sweep and the benchmarks
    measure on. Seeding torch's global generator, if wanted, is the caller's."""
    device = torch.device(config["device"])
    task = task_cls(config, device)
    method = method_cls(config)
    phi = {k: v.to(device) for k, v in method.init_meta_params(task, init).items()}
    return SetUp(task, method, phi)


def run_trial(method_cls: type[Method], task_cls: type[Task], config: dict,
              stop_after: int | None = None, observe: Observer | None = None) -> dict:
    """Meta-train and evaluate; returns the record fields `metrics`, `curve`, `timing`,
    `memory`, `execution` and the device used. Raises Diverged or any error of the plugins.
    `stop_after` ends training after that many meta-iterations, with the learning-rate
    schedule and curve spacing of the full trial, and skips the test evaluation (metrics
    stay empty): the first part of the trial, exactly as the full trial runs it. The
    record's `execution` says how the meta-batches were executed (benchsuite.core.execution).
    `observe`, if given, is called with each event of training as it happens (`Event`):
    for progress displays and metric streams; it sees the numbers, it changes none."""
    observe = observe or _ignore
    wall_start = time.perf_counter()
    device = torch.device(config["device"])
    reproducibility.apply(device, config)  # CUDA determinism, before any CUDA work
    task_name, seed = task_cls.name, config["seed"]
    torch.manual_seed(derive_seed(task_name, method_cls.name, seed))

    built = set_up(method_cls, task_cls, config, init=generator(task_name, seed, "init"))
    task, method, phi = built.task, built.method, built.phi
    clock = Clock(device)

    optimizer = make_optimizer(config, list(phi.values()))
    schedule = make_schedule(config, optimizer)
    train_gen = generator(task_name, seed, "train")
    val_episodes = built.episodes("validation", config["val_episodes"],
                                  generator(task_name, seed, "validation"))
    test_episodes = built.episodes("test", config["test_episodes"],
                                   generator(task_name, seed, "test"))
    fidelity_batch = built.episodes("train", config["meta_batch"],
                                    generator(task_name, seed, "fidelity"))
    # memory counts from here: the task, φ₀ and every episode drawn up front (the test
    # set: 600 omniglot episodes are 168 MiB) are the workload, not meta-training
    memory = MemoryMeter(device)
    with clock.interval("fidelity"):
        fidelity = hypergradient_fidelity(method, task, phi, fidelity_batch)

    iterations = config["iterations"]
    curve_every = max(1, iterations // max(1, config["curve_points"]))
    step_times: list[float] = []
    recent_losses: list[float] = []
    curve = []

    def curve_point(iteration: int) -> None:
        with clock.interval("eval"), memory.phase("eval"):
            val = summarize(episode_scores(method, task, phi, val_episodes,
                                           config["eval_inner_steps"], config))
        curve.append({
            "iteration": iteration,
            "train_time_s": clock.totals.get("train", 0.0),
            "train_outer_loss": statistics.fmean(recent_losses) if recent_losses else None,
            f"val_{task.metric}": val["mean"],
            f"val_{task.metric}_ci95": val["ci95"],
        })
        recent_losses.clear()
        observe(Event("curve", iteration, last, time.perf_counter() - wall_start, curve[-1]))

    last = iterations if stop_after is None else min(stop_after, iterations)
    curve_point(0)
    path = MetaStepPath(method, task, config)
    for iteration in range(1, last + 1):
        with clock.interval("sampling"):
            batch = built.episodes("train", config["meta_batch"], train_gen)
        compiling = path.compiling(iteration, step_times)
        # a compiling step is timed apart: out of the step times and the training time,
        # its memory out of meta-training's peak
        with (clock.interval("compile") if compiling else clock.interval("train", step_times),
              memory.phase("compile") if compiling else contextlib.nullcontext()):
            result = path.meta_gradient(phi, batch)
            outer_loss = float(result.outer_loss)
            if not math.isfinite(outer_loss) or not all(
                    torch.isfinite(g).all() for g in result.grads.values()):
                raise Diverged(f"non-finite meta-objective or hypergradient at iteration "
                               f"{iteration} (outer loss {outer_loss})")
            for name, tensor in phi.items():
                tensor.grad = result.grads[name].detach()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        path.timed(iteration, step_times)
        recent_losses.append(outer_loss)
        observe(Event("iteration", iteration, last, time.perf_counter() - wall_start, {
            "outer_loss": outer_loss,
            "step_s": None if compiling else step_times[-1],
            "compile_s": clock.totals.get("compile", 0.0) if compiling else None}))
        if iteration % curve_every == 0 or iteration == iterations:
            curve_point(iteration)

    metrics: dict[str, Any] = {}
    if last == iterations:
        with clock.interval("eval"), memory.phase("eval"):
            method.after_training(task, phi)  # e.g. a step size chosen on validation
            metrics = evaluate_on_test(method, task, phi, test_episodes, config)
        metrics.update(fidelity, final_train_outer_loss=curve[-1]["train_outer_loss"])

    warmup = min(config["warmup"], max(0, len(step_times) - 1))
    timed = step_times[warmup:]
    timing = {
        "per_iteration_s": statistics.median(timed) if timed else None,
        "per_iteration_mean_s": statistics.fmean(timed) if timed else None,
        "warmup_iterations": warmup,
        "warmup_s": sum(step_times[:warmup]),
        "iterations": last,
        "train_s": clock.totals.get("train", 0.0),
        "sampling_s": clock.totals.get("sampling", 0.0),
        "eval_s": clock.totals.get("eval", 0.0),
        "fidelity_s": clock.totals.get("fidelity", 0.0),
        "compile_s": clock.totals.get("compile", 0.0),
        "total_s": time.perf_counter() - wall_start,
    }
    execution = {**describe(config), "compile": path.record(timing["compile_s"])}
    # after the final test evaluation, what it left resident is no phase's
    measured_memory = memory.result(after_final_phase=bool(metrics))
    return {"metrics": metrics, "curve": curve, "timing": timing, "memory": measured_memory,
            "execution": execution, "device": device}


def evaluate_on_test(method: Method, task: Task, phi: Params, episodes: EpisodeBatch,
                 config: dict) -> dict[str, Any]:
    """The task metric on the test episodes after each number of adaptation steps (the
    main one unprefixed), plus the task's (and the method's, if it has any) final metrics.

    Per step count: the mean, std and 95% CI over the *finite* episodes, `_n` the number
    of test episodes, `_diverged` the fraction of them whose score is not finite, `_median`
    and `_iqm` (interquartile mean) of the finite ones; `episode_scores[str(steps)]` keeps
    every episode's score as base64 float32 (benchsuite.core.statistics.encode_scores), in
    episode order, so that methods can be compared paired on the same episodes."""
    metrics: dict[str, Any] = {"episode_scores": {}}
    for steps in sorted({config["eval_inner_steps"], *config.get("eval_steps", ())}):
        scores = episode_scores(method, task, phi, episodes, steps, config)
        finite = scores[torch.isfinite(scores)]
        summary = summarize(finite) if finite.numel() else {
            "mean": math.nan, "std": math.nan, "ci95": math.nan}
        robust = stats.finite_summary(scores.double().cpu().numpy())
        prefix = (task.metric if steps == config["eval_inner_steps"]
                  else f"{task.metric}_at_{steps}_steps")
        metrics[prefix] = summary["mean"]
        metrics[f"{prefix}_ci95"] = summary["ci95"]
        metrics[f"{prefix}_std"] = summary["std"]
        metrics[f"{prefix}_n"] = scores.numel()
        metrics[f"{prefix}_diverged"] = robust["diverged"]
        metrics[f"{prefix}_median"] = robust["median"]
        metrics[f"{prefix}_iqm"] = robust["iqm"]
        metrics[f"{task.metric}_at_{steps}_steps"] = summary["mean"]
        metrics["episode_scores"][str(steps)] = stats.encode_scores(scores)
    if task.extra_metrics:
        extra = adaptation_metrics(method, task, phi, episodes, config["eval_inner_steps"],
                                   config)
        for name, values in extra.items():
            summary = summarize(values)
            metrics.update({name: summary["mean"], f"{name}_ci95": summary["ci95"],
                            f"{name}_std": summary["std"], f"{name}_n": summary["n"]})
    metrics.update(task.final_metrics(phi))
    metrics.update(method.final_metrics(task, phi))
    return metrics


def adaptation_metrics(method: Method, task: Task, phi: Params, episodes: EpisodeBatch,
                       steps: int, config: dict) -> dict[str, torch.Tensor]:
    """The task's `extra_metrics` of every episode after `steps` adaptation steps, each a
    tensor over the episodes (in chunks of `eval_chunk`, without autograd, as
    `episode_scores`)."""
    def metrics_one(phi, sx, sy, qx, qy):
        theta = method.adapt(task, phi, sx, sy, steps)
        own = task_part(phi)
        return task.adaptation_metrics(task.initial_theta(own), theta, own, sx, sy)

    randomness = "different" if method.adapts_randomly else "error"
    chunks = []
    for start in range(0, len(episodes), config["eval_chunk"]):
        chunk = episodes.slice(start, start + config["eval_chunk"])
        with torch.no_grad():
            chunks.append(over_tasks(metrics_one, config["batching"], randomness)(
                phi, *chunk.tensors()))
    return {name: torch.cat([c[name] for c in chunks]) for name in task.extra_metrics}
