"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms"),
batched version (Algorithm 2), with the defaults of the Reptile-Torch write-up: inner step
size 0.02, inner mini-batch 5, one inner epoch, outer step size ε = 0.1 annealed linearly
to 0 over training, meta-batch 10, plain SGD outside.

For each task b of the meta-batch:
    W_b = SGD_k(φ; S_b)    k mini-batch SGD steps of size α on the support set from φ
and the meta-update is
    φ ← φ + ε · 1/B Σ_b (W_b − φ).
The runner applies `grads` with SGD at rate ε (meta_lr), so the "hypergradient" returned
is φ − W̄, which makes the step exactly φ + ε(W̄ − φ). Mini-batches cycle through the
support set in order, so the inner loop is deterministic and vmappable.
"""

import torch

from benchsuite.contract import META_INIT, MetaGradient, Method
from benchsuite.functional import gradient_step, inner_gradient, over_tasks


class Reptile(Method):
    name = "reptile"
    paper = "Nichol et al. 2018 (Reptile), batched Algorithm 2"
    supports = frozenset({META_INIT})
    hyperparameters = {"inner_batch": 5, "inner_epochs": 1}
    task_overrides = {"inner_lr": 0.02, "meta_batch": 10, "meta_lr": 0.1,
                      "meta_optimizer": "sgd", "meta_lr_schedule": "linear"}

    def inner_steps(self, support_size: int) -> int:
        batches_per_epoch = -(-support_size // self.config["inner_batch"])
        return self.config["inner_epochs"] * batches_per_epoch

    def adapt(self, task, phi, support_x, support_y, steps):
        theta = task.initial_theta(phi)
        n, size = support_x.shape[0], self.config["inner_batch"]
        for step in range(steps):
            start = (step * size) % n
            rows = slice(start, min(start + size, n))
            g = inner_gradient(task, theta, phi, support_x[rows], support_y[rows])
            theta = gradient_step(theta, g, self.config["inner_lr"])
        return theta

    def meta_gradient(self, task, phi, batch):
        steps = self.inner_steps(batch.support_x.shape[1])

        def adapted_weights(phi, support_x, support_y, query_x, query_y):
            theta = self.adapt(task, phi, support_x, support_y, steps)
            return theta, task.outer_loss(theta, phi, query_x, query_y)

        with torch.no_grad():
            weights, losses = over_tasks(adapted_weights, self.config["batching"])(
                phi, *batch.tensors())
        grads = {k: phi[k] - weights[k].mean(0) for k in phi}
        return MetaGradient(grads=grads, outer_loss=float(losses.mean()))
