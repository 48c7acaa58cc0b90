"""Conv execution options (issue 25, item 2), measured beside today's path without
changing it: the engine's conv meta-step (one task at a time, plain autograd, native batch
norm: benchsuite.blocks.fewshot.CONV_EXECUTION) against

- `channels-last`: the same meta-step with φ's convolution kernels and the batch's images
  in `torch.channels_last` memory format (every activation follows the kernels' format);
- `grouped-query`: each task adapted on its support set as today, then one query pass for
  all tasks of the meta-batch: the tasks' adapted kernels stacked as the groups of one
  convolution over all query images (batch norm per task and channel, the heads as one
  batched matmul), and one backward through all tasks. conv4_forward takes no `groups`, so
  this pass is written here; every task's graph is alive until that backward;
- `without-onednn`: today's meta-step with oneDNN switched off
  (torch.backends.mkldnn.flags(enabled=False)). On x86 CPUs today's convolutions are
  oneDNN's (aten::mkldnn_convolution, forward and backward); without it PyTorch falls back
  to NNPACK / im2col + GEMM. This option measures what oneDNN is worth, not a candidate;
- `fused-bn-relu`: batch norm and ReLU as one fused kernel (torch.compile, inductor, of
  ReLU(BN(x)) alone; the pool then follows, which gives the same values as today's
  pool-then-ReLU since ReLU commutes with max). PyTorch has no eager fused BN+ReLU for
  training on CPU, and inductor's kernels cannot be differentiated twice, so MAML's
  second-order step cannot use it: that pair is reported as failed, with the error.

Each option times our `maml` and `fomaml` meta-step interleaved with today's, and gives
the relative difference of its meta-gradient from today's, ‖g − g_today‖ / ‖g_today‖ over
all meta-parameters together (the exactness measure of tests/test_compiled.py; per tensor,
the conv biases' gradients are rounding noise, since batch norm cancels a bias): an
option is a candidate for the engine when it is faster and that difference is ≤ EXACT
(float32).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from unittest import mock

import torch
import torch.nn.functional as F
from tabulate import tabulate

from benchmarks.compare import relative_difference, timed_call
from benchmarks.workloads import CONV_WORKLOADS, WORKLOADS, build_workload, rounds
from benchsuite.blocks.models import CONV4_BLOCKS
from benchsuite.core.execution import TASKS_LOOPED, running_tasks
from benchsuite.core.structures import EpisodeBatch, Params
from benchsuite.running.trial import meta_gradient

EXACT = 1e-6
"""Largest relative difference of a meta-gradient from today's path for an option to be
kept (issue 25, in float32)."""
FASTER = 1.05
"""Least speed-up over today's path that counts as faster (beyond round-to-round noise)."""
METHODS = ("maml", "fomaml")
OPTIONS = ("channels-last", "grouped-query", "without-onednn", "fused-bn-relu")

Step = Callable[[], Params]


def in_channels_last(phi: Params, batch: EpisodeBatch) -> tuple[Params, EpisodeBatch]:
    """φ and the meta-batch with the kernels, and each task's images, in channels-last
    memory format."""
    phi = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
           for k, v in phi.items()}

    def images(x: torch.Tensor) -> torch.Tensor:  # tasks × N × C × H × W, channels last
        return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)

    return phi, EpisodeBatch(images(batch.support_x), batch.support_y,
                             images(batch.query_x), batch.query_y)


def grouped_conv4_forward(networks: list[Params], x: torch.Tensor) -> torch.Tensor:
    """Logits (tasks, N, ways) of conv4_forward with task t's parameters `networks[t]` on
    its images `x[t]` (x: tasks × N × C × H × W), all tasks in one grouped convolution."""
    tasks, count = x.shape[:2]
    x = x.transpose(0, 1).reshape(count, -1, *x.shape[-2:])  # N × (tasks·C) × H × W

    def stacked(key: str) -> torch.Tensor:
        return torch.cat([n[key] for n in networks])

    for i in range(CONV4_BLOCKS):
        x = F.conv2d(x, stacked(f"block{i}.conv.weight"), stacked(f"block{i}.conv.bias"),
                     padding=1, groups=tasks)
        x = F.batch_norm(x, None, None, stacked(f"block{i}.norm.weight"),
                         stacked(f"block{i}.norm.bias"), training=True, eps=1e-5)
        x = F.relu(F.max_pool2d(x, 2))
    features = x.reshape(count, tasks, -1).transpose(0, 1)  # tasks × N × features
    heads = torch.stack([n["head.weight"] for n in networks])
    biases = torch.stack([n["head.bias"] for n in networks]).unsqueeze(1)
    return torch.baddbmm(biases, features, heads.transpose(1, 2))


def adapted(method, task, phi: Params, support_x, support_y) -> Params:
    """θ_K of one task as the method's meta-objective sees it: MAML's differentiable inner
    loop, or FOMAML's θ₀(φ) + (θ_K − θ₀) with the difference a constant (methods/fomaml.py)."""
    steps = method.config["inner_steps"]
    if not method.first_order:
        return method.adapt(task, phi, support_x, support_y, steps)
    start = task.initial_theta(phi)
    with torch.no_grad():
        moved = {k: v - start[k] for k, v in
                 method.adapt(task, phi, support_x, support_y, steps).items()}
    return {k: start[k] + moved[k] for k in start}


def grouped_query_gradient(method, task, phi: Params, batch: EpisodeBatch) -> Params:
    """The meta-gradient with every task adapted alone and one grouped query pass."""
    leaves = {k: v.detach().requires_grad_() for k, v in phi.items()}
    with torch.enable_grad(), running_tasks(TASKS_LOOPED):
        networks = [task.network(adapted(method, task, leaves, batch.support_x[t],
                                         batch.support_y[t]), leaves)
                    for t in range(len(batch))]
        logits = grouped_conv4_forward(networks, batch.query_x)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())
        grads = torch.autograd.grad(loss, list(leaves.values()), materialize_grads=True)
    return dict(zip(leaves, grads))


@torch.compile(dynamic=False)
def _bn_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.relu(F.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5))


def fused_conv4_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """conv4_forward with each block's batch norm and ReLU in one fused (compiled) kernel."""
    for i in range(CONV4_BLOCKS):
        x = F.conv2d(x, params[f"block{i}.conv.weight"], params[f"block{i}.conv.bias"],
                     padding=1)
        x = F.max_pool2d(_bn_relu(x, params[f"block{i}.norm.weight"],
                                  params[f"block{i}.norm.bias"]), 2)
    return F.linear(x.flatten(1), params["head.weight"], params["head.bias"])


def without_onednn(step: Step) -> Step:
    def run() -> Params:
        with torch.backends.mkldnn.flags(enabled=False):
            return step()
    return run


def with_fused_bn_relu(task, step: Step) -> Step:
    """`step` with the task's network forward replaced by fused_conv4_forward (the workloads'
    tasks run conv4_forward: benchmarks.workloads, model "conv4")."""
    def run() -> Params:
        with mock.patch.object(task, "forward", fused_conv4_forward):
            return step()
    return run


def steps(method, task, phi: Params, batch: EpisodeBatch) -> dict[str, Step]:
    """Today's meta-step and each option's, on φ and the meta-batch."""
    phi_last, batch_last = in_channels_last(phi, batch)

    def today() -> Params:
        return meta_gradient(method, task, phi, batch).grads

    return {
        "today": today,
        "channels-last": lambda: meta_gradient(method, task, phi_last, batch_last).grads,
        "grouped-query": lambda: grouped_query_gradient(method, task, phi, batch),
        "without-onednn": without_onednn(today),
        "fused-bn-relu": with_fused_bn_relu(task, today),
    }


def in_float64(phi: Params, batch: EpisodeBatch) -> tuple[Params, EpisodeBatch]:
    return ({k: v.double() for k, v in phi.items()},
            EpisodeBatch(batch.support_x.double(), batch.support_y, batch.query_x.double(),
                         batch.query_y))


def differences(results: dict[str, Params], reference: Params) -> dict[str, float]:
    """Each step's meta-gradient's relative difference from `reference`."""
    return {name: relative_difference([grads[k] for k in reference], list(reference.values()))
            for name, grads in results.items()}


def first_calls(contenders: dict[str, Step]) -> tuple[dict[str, Params], dict[str, str]]:
    """Each step's meta-gradient (its warm-up call), and the error of each that raised."""
    results, failures = {}, {}
    for name, step in contenders.items():
        try:
            results[name] = step()
        except Exception as error:  # an option the method cannot run: reported, not fatal
            if name == "today":
                raise
            failures[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return results, failures


def measure(registry, workload: str, method: str) -> dict:
    """Today's step and the options' on `workload` with `method`, alternated round by
    round (order rotating) after a warm-up call each: median times, each option's
    meta-gradient difference from today's in float32 (what a trial computes) and in
    float64 (rounding shrinks there; a different computation would not), and the float32
    rounding error of today's step and of each option (against today's in float64). An
    option that raises is reported with its error instead."""
    built = build_workload(registry, workload, method)
    contenders = steps(built.method, built.task, built.phi, built.batch)
    single, failures = first_calls(contenders)
    double, _ = first_calls({name: step for name, step in steps(
        built.method, built.task, *in_float64(built.phi, built.batch)).items()
        if name in single})
    in_float32, in_double = differences(single, single["today"]), differences(double,
                                                                              double["today"])
    # each float32 step against today's float64 one: the rounding error it carries
    errors = differences(single, double["today"])
    times: dict[str, list[float]] = {name: [] for name in single}
    names = list(single)
    device = built.batch.support_x.device
    for r in range(rounds(WORKLOADS[workload]["rounds"])):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timed_call(contenders[name], device)[0])
    result: dict = {"today_s": statistics.median(times["today"]),
                    "today_float32_error": errors["today"]}
    for name in OPTIONS:
        if name in failures:
            result[name] = {"failed": failures[name]}
            continue
        median = statistics.median(times[name])
        result[name] = {"median_s": median, "speedup": result["today_s"] / median,
                        "grad_rel_diff": in_float32[name],
                        "grad_rel_diff_float64": in_double[name],
                        "float32_error": errors[name]}
    return result


def run(registry) -> dict:
    return {w: {m: measure(registry, w, m) for m in METHODS} for w in CONV_WORKLOADS}


def verdict(option: dict) -> str:
    """Whether an option is a candidate for the engine, and if not, why."""
    faster, exact = option["speedup"] >= FASTER, option["grad_rel_diff"] <= EXACT
    if faster and exact:
        return "candidate: faster and exact"
    reasons = [] if faster else [f"not faster (< {FASTER:g}×)"]
    if not exact:
        same = option["grad_rel_diff_float64"] <= EXACT
        reasons.append(f"not exact in float32 (> {EXACT:g})" + (
            ": the same computation (float64 agrees), rounded in another order" if same
            else ", nor in float64: not the same computation"))
    return "not kept: " + "; ".join(reasons)


def row(workload: str, method: str, entry: dict, option: str) -> list[str]:
    measured = entry[option]
    if "failed" in measured:
        return [f"`{workload}`", method, option, f"{entry['today_s'] * 1e3:.1f}", "–", "–",
                "–", "–", "–", f"cannot run: {measured['failed']}"]
    return [f"`{workload}`", method, option, f"{entry['today_s'] * 1e3:.1f}",
            f"{measured['median_s'] * 1e3:.1f}", f"{measured['speedup']:.2f}×",
            f"{measured['grad_rel_diff']:.1e}", f"{measured['grad_rel_diff_float64']:.1e}",
            f"{entry['today_float32_error']:.1e} / {measured['float32_error']:.1e}",
            verdict(measured)]


def table(results: dict) -> str:
    rows = [row(workload, method, entry, option)
            for workload, methods in results.items() for method, entry in methods.items()
            for option in OPTIONS]
    return tabulate(rows, ["workload", "method", "option", "today ms", "option ms",
                           "speed vs today", "rel. diff float32", "rel. diff float64",
                           "float32 error: today / option", "verdict"], tablefmt="github")
