"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms"),
batched version (Algorithm 2).

For each task b of the meta-batch:
    W_b = U_k(φ; D_b)   k mini-batch steps of the inner optimiser from φ on the task's
                        training data D_b (its support set, or support ∪ query with
                        `train_on_query`, for protocols that train on more shots than
                        they test with)
and the meta-update is
    φ ← φ + ε · 1/B Σ_b (W_b − φ).
The runner applies `grads` with SGD at rate ε (meta_lr, annealed linearly to 0 over
training as in both of the paper's few-shot set-ups), so the "hypergradient" returned is
φ − W̄, which makes the step exactly φ + ε(W̄ − φ).

The mini-batches (`inner_batches`) cycle through the data in order, or are drawn as the
sources draw them: `shuffled` passes over the data, each reshuffled, cut into batches that
may span two passes (openai/supervised-reptile, reptile.py `_mini_batches` without
replacement), or `resampled`, every batch a fresh draw of distinct examples
(supervised-reptile with replacement; dualslash/reptile-torch, src/reptile.py:46-47).
U is plain SGD at the inner step size α, or Adam with β₁ = 0 as TensorFlow's
AdamOptimizer runs it (supervised-reptile's models.py): its second moment starts from zero
for every task, or is `carried` from task to task and on to test-time adaptation, as
supervised-reptile's training, which restores only the model's variables after a task,
does. k is the config's `inner_steps`; the settings of each task come from its protocol
(benchsuite/protocols/paper/reptile.toml,
benchsuite/protocols/named/reptile-torch.toml).
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch

from benchsuite.core.contract import META_INIT, MetaGradient, Method
from benchsuite.core.functional import gradient_step, inner_gradient, over_tasks
from benchsuite.core.settings import Annotated, AtLeast

ADAM_BETA2, ADAM_EPSILON = 0.999, 1e-8  # TensorFlow's Adam defaults, as supervised-reptile


@dataclass
class AdamState:
    """Adam's second moment v and its step count t (β₁ = 0 keeps no first moment)."""

    second_moment: dict[str, torch.Tensor]
    step: int


class Reptile(Method):
    name = "reptile"
    paper = "Nichol et al. 2018 (Reptile), batched Algorithm 2"
    supports = frozenset({META_INIT})
    task_overrides = {"meta_optimizer": "sgd", "meta_lr_schedule": "linear", "meta_lr": 0.1}
    adapts_randomly = True  # the `shuffled` and `resampled` mini-batches

    @dataclass(frozen=True)
    class Settings:
        inner_batch: Annotated[int, AtLeast(1)] = 5
        """Examples per inner mini-batch step."""
        eval_inner_batch: Annotated[int, AtLeast(0)] = 0
        """Examples per test-time adaptation step; 0: `inner_batch`."""
        inner_loss: Literal["mean", "sum"] = "mean"
        """The inner steps' loss: the batch's mean, or its sum (TensorFlow's `minimize` of
        a per-example loss, as supervised-reptile's models.py:27-30)."""
        inner_batches: Literal["cycle", "shuffled", "resampled"] = "cycle"
        """How the mini-batches are drawn: in order, cycling through the training examples;
        from passes over them, each reshuffled (supervised-reptile); or each a fresh draw
        of distinct examples (Reptile-Torch)."""
        inner_optimizer: Literal["sgd", "adam"] = "sgd"
        """The inner loop's optimiser: plain SGD, or Adam with β₁ = 0 (supervised-reptile)."""
        inner_adam_state: Literal["per_task", "carried"] = "per_task"
        """Adam's moment: from zero for every task, or carried from task to task through
        meta-training and into test-time adaptation (supervised-reptile)."""
        train_on_query: bool = False
        """Train the inner loop on support and query examples together (the paper's train
        shots exceed its test shots; this stands in for them)."""

    def __init__(self, config):
        super().__init__(config)
        self.carried: AdamState | None = None
        """The Adam state after the last meta-training task, with `carried` moments."""

    def inner_loop(self, task, phi, x, y, steps, state: AdamState | None, size: int):
        """θ after `steps` steps on mini-batches of `size` from θ₀(φ) on (x, y), and the
        Adam state after them (None for SGD)."""
        theta = task.initial_theta(phi)
        n, rule = x.shape[0], self.config["inner_batches"]
        rows = None if rule == "cycle" else minibatch_rows(n, size, steps, rule, x.device)
        adam = self.config["inner_optimizer"] == "adam"
        if adam and state is None:
            state = AdamState({k: torch.zeros_like(v) for k, v in theta.items()}, 0)
        for step in range(steps):
            start = (step * size) % n
            batch = slice(start, min(start + size, n)) if rows is None else rows[step]
            g = inner_gradient(task, theta, phi, x[batch], y[batch])
            if self.config["inner_loss"] == "sum":
                g = {k: v * y[batch].shape[0] for k, v in g.items()}
            if state is not None:
                g, state = adam_direction(g, state)
            theta = gradient_step(theta, g, self.config["inner_lr"])
        return theta, state

    def start_state(self) -> AdamState | None:
        carry = (self.config["inner_optimizer"] == "adam"
                 and self.config["inner_adam_state"] == "carried")
        return self.carried if carry else None

    def adapt(self, task, phi, support_x, support_y, steps):
        size = self.config["eval_inner_batch"] or self.config["inner_batch"]
        return self.inner_loop(task, phi, support_x, support_y, steps, self.start_state(),
                               size)[0]

    def meta_gradient(self, task, phi, batch):
        steps = self.config["inner_steps"]
        on_query = self.config["train_on_query"]

        def training_data(support_x, support_y, query_x, query_y):
            return ((torch.cat([support_x, query_x]), torch.cat([support_y, query_y]))
                    if on_query else (support_x, support_y))

        with torch.no_grad():
            if self.config["inner_optimizer"] == "adam" and \
                    self.config["inner_adam_state"] == "carried":
                weights, losses = self.carried_tasks(task, phi, batch, training_data)
            else:
                def adapted_weights(phi, support_x, support_y, query_x, query_y):
                    x, y = training_data(support_x, support_y, query_x, query_y)
                    theta = self.inner_loop(task, phi, x, y, steps, None,
                                            self.config["inner_batch"])[0]
                    return theta, task.outer_loss(theta, phi, query_x, query_y)

                weights, losses = over_tasks(adapted_weights, self.config["batching"],
                                             "different")(phi, *batch.tensors())
        grads = {k: phi[k] - weights[k].mean(0) for k in phi}
        return MetaGradient(grads=grads, outer_loss=losses.mean())

    def carried_tasks(self, task, phi, batch, training_data):
        """The tasks one after another, each starting Adam where the previous one left it
        (supervised-reptile, reptile.py:62-72): adapted weights and outer losses, stacked."""
        weights, losses = [], []
        for t in range(len(batch)):
            sx, sy, qx, qy = (part[t] for part in batch.tensors())
            x, y = training_data(sx, sy, qx, qy)
            theta, self.carried = self.inner_loop(task, phi, x, y, self.config["inner_steps"],
                                                  self.carried, self.config["inner_batch"])
            weights.append(theta)
            losses.append(task.outer_loss(theta, phi, qx, qy))
        return {k: torch.stack([w[k] for w in weights]) for k in phi}, torch.stack(losses)


def minibatch_rows(n: int, size: int, steps: int, rule: str,
                   device: torch.device | None = None) -> torch.Tensor:
    """The example indices of `steps` random mini-batches of `size` from n examples, a
    (steps, size) tensor (size capped at n for `resampled`), by `rule`:
    `shuffled` — passes over the examples, each in a fresh random order, cut into batches
    that continue from one pass into the next;
    `resampled` — each batch a fresh draw of min(size, n) distinct examples.
    (`cycle`, the deterministic rule, takes consecutive slices: Reptile.inner_loop.)
    The orders come from torch's default generator (per task under vmap with randomness
    "different")."""
    if rule == "shuffled":
        passes = math.ceil(steps * size / n)
        order = torch.rand(passes, n, device=device).argsort(dim=1).flatten()
        return order[:steps * size].view(steps, size)
    if rule == "resampled":
        return torch.rand(steps, n, device=device).argsort(dim=1)[:, :min(size, n)]
    raise ValueError(f"inner_batches {rule!r}: use shuffled or resampled")


def adam_direction(gradient, state: AdamState):
    """TensorFlow's Adam step direction with β₁ = 0 (the first moment is the gradient
    itself), the update being θ − α · direction:
        t ← t + 1,  v ← β₂ v + (1 − β₂) g²,  direction = √(1 − β₂ᵗ) g / (√v + ε)
    (tf.compat.v1.train.AdamOptimizer: lr_t = α √(1 − β₂ᵗ) / (1 − β₁ᵗ), ε added to √v);
    and the new state."""
    step = state.step + 1
    second_moment = {k: ADAM_BETA2 * state.second_moment[k] + (1 - ADAM_BETA2) * g * g
                     for k, g in gradient.items()}
    correction = math.sqrt(1 - ADAM_BETA2 ** step)
    direction = {k: correction * g / (second_moment[k].sqrt() + ADAM_EPSILON)
                 for k, g in gradient.items()}
    return direction, AdamState(second_moment, step)
