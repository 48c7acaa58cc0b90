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
φ − W̄, which makes the step exactly φ + ε(W̄ − φ). Mini-batches cycle through the data in
order, so the inner loop is deterministic and vmappable. U is plain SGD at the inner step
size α, or Adam with β₁ = 0 (the paper's few-shot classification runs, openai/supervised-
reptile), whose moments start from zero for every task. k is the config's `inner_steps`;
the settings of each task come from its protocol (benchsuite/protocols/paper/reptile.toml).
"""

from dataclasses import dataclass
from typing import Literal

import torch

from benchsuite.core.contract import META_INIT, MetaGradient, Method
from benchsuite.core.functional import gradient_step, inner_gradient, over_tasks
from benchsuite.core.settings import Annotated, AtLeast

ADAM_BETA2, ADAM_EPSILON = 0.999, 1e-8  # TensorFlow's Adam defaults, as supervised-reptile


class Reptile(Method):
    name = "reptile"
    paper = "Nichol et al. 2018 (Reptile), batched Algorithm 2"
    supports = frozenset({META_INIT})
    task_overrides = {"meta_optimizer": "sgd", "meta_lr_schedule": "linear", "meta_lr": 0.1}

    @dataclass(frozen=True)
    class Settings:
        inner_batch: Annotated[int, AtLeast(1)] = 5
        """Examples per inner mini-batch step (cycling through the training examples)."""
        inner_optimizer: Literal["sgd", "adam"] = "sgd"
        """The inner loop's optimiser: plain SGD, or Adam with β₁ = 0 (supervised-reptile)."""
        train_on_query: bool = False
        """Train the inner loop on support and query examples together (the paper's train
        shots exceed its test shots; this stands in for them)."""

    def adapt(self, task, phi, support_x, support_y, steps):
        theta = task.initial_theta(phi)
        n, size = support_x.shape[0], self.config["inner_batch"]
        adam = self.config["inner_optimizer"] == "adam"
        moment = {k: torch.zeros_like(v) for k, v in theta.items()} if adam else {}
        for step in range(steps):
            start = (step * size) % n
            rows = slice(start, min(start + size, n))
            g = inner_gradient(task, theta, phi, support_x[rows], support_y[rows])
            if adam:
                g, moment = adam_direction(g, moment, step + 1)
            theta = gradient_step(theta, g, self.config["inner_lr"])
        return theta

    def meta_gradient(self, task, phi, batch):
        steps = self.config["inner_steps"]
        on_query = self.config["train_on_query"]

        def adapted_weights(phi, support_x, support_y, query_x, query_y):
            x, y = ((torch.cat([support_x, query_x]), torch.cat([support_y, query_y]))
                    if on_query else (support_x, support_y))
            theta = self.adapt(task, phi, x, y, steps)
            return theta, task.outer_loss(theta, phi, query_x, query_y)

        with torch.no_grad():
            weights, losses = over_tasks(adapted_weights, self.config["batching"])(
                phi, *batch.tensors())
        grads = {k: phi[k] - weights[k].mean(0) for k in phi}
        return MetaGradient(grads=grads, outer_loss=float(losses.mean()))


def adam_direction(gradient, second_moment, step):
    """Adam's step direction with β₁ = 0 (the first moment is the gradient itself):
    g / (√v̂ + ε) with v ← β₂ v + (1 − β₂) g², v̂ = v / (1 − β₂^t); and the new v."""
    second_moment = {k: ADAM_BETA2 * second_moment[k] + (1 - ADAM_BETA2) * g * g
                     for k, g in gradient.items()}
    correction = 1 - ADAM_BETA2 ** step
    direction = {k: g / ((second_moment[k] / correction).sqrt() + ADAM_EPSILON)
                 for k, g in gradient.items()}
    return direction, second_moment
