"""Transfer floor — the "Baseline" of Chen, Liu, Kira, Wang & Huang, ICLR 2019, "A Closer
Look at Few-shot Classification" (§3.1): train one ordinary classifier on all training
classes with their global labels, then, per test episode, freeze the backbone and fit a
new linear classifier on the support set.

    training:   one classifier over the C classes of the training split (each Omniglot
                rotation is a class of its own, as in the episodes); backbone h_ψ (the
                task's conv-4, ψ = φ's backbone) and head (W, b) ∈ R^{C×d} × R^C,
                    L(ψ, W, b) = CE(W h_ψ(x) + b, y_global),  (x, y_global) ~ a random
                mini-batch of `batch_size` training images,
                one step of the runner's meta-optimiser (Adam at meta_lr, as Chen et al.'s
                Adam 1e-3) per meta-iteration; the episodes the runner samples are unused,
                so the meta-batch is one chunk (meta_chunk 0): one mini-batch a step.
    test:       a new head for the N episode classes, zero-initialised, fitted with the
                backbone frozen: θ = (ψ, W′ = 0, b′ = 0),
                    (W′, b′) ← (W′, b′) − α* ∇_(W′,b′) CE(W′ h_ψ(S) + b′, y_S),  K steps
                (full-batch gradient descent; Chen et al. use 100 SGD steps of batch 4
                with momentum — here K is the task's eval steps so every row of the
                leaderboard adapts with the same number of steps).
    step size:  α* chosen on the trial's validation episodes from `step_grid` ∪ {inner_lr}
                (see methods/scratch.py) when training ends (Method.after_training).

It needs the task's training examples under global labels
(Task.labelled_training_examples): the few-shot image tasks have them; every other task
is n/a.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import grad

from benchsuite.blocks.models import uniform_fan_in
from benchsuite.core.contract import (
    META_INIT,
    META_REPRESENTATION,
    MetaGradient,
    Method,
    Task,
    owned,
    owned_part,
    task_part,
)
from benchsuite.core.functional import gradient_descent
from benchsuite.core.settings import Annotated, AtLeast
from benchsuite.methods.scratch import STEP_GRID, StepSizeOnValidation

GROUP = "transfer"


class Transfer(StepSizeOnValidation, Method):
    name = "transfer"
    paper = "Chen et al. 2019, 'A Closer Look at Few-shot Classification' (Baseline)"
    supports = frozenset({META_INIT, META_REPRESENTATION})
    is_floor = True  # a baseline the leaderboard sets every method against
    task_overrides = {"meta_chunk": 0}  # one global-label mini-batch per meta-iteration

    @dataclass(frozen=True)
    class Settings:
        batch_size: Annotated[int, AtLeast(1)] = 64
        """Images per global-label mini-batch (one per meta-iteration)."""
        step_grid: tuple[float, ...] = STEP_GRID
        """Test-time step sizes for the new head tried on the validation episodes."""

    @classmethod
    def incompatibility(cls, task):
        reason = super().incompatibility(task)
        if reason:
            return reason
        if (task.labelled_training_examples is Task.labelled_training_examples
                or not task.head_keys):
            return (f"transfer trains a classifier on the training classes' global labels; "
                    f"{task.name} has none (Task.labelled_training_examples) or no head_keys")
        return None

    # -- parameters ---------------------------------------------------------------------
    def init_meta_params(self, task, gen):
        phi = task.init_meta_params(gen)
        self.images = task.labelled_training_examples()
        classes = self.images.classes
        head = task.initial_theta(phi)[task.head_keys[0]]
        features = head.shape[1]
        self.sampler = torch.Generator().manual_seed(
            int(torch.randint(2**62, (), generator=gen)))
        phi.update(owned(GROUP, {
            "weight": uniform_fan_in((classes, features), features, gen),
            "bias": uniform_fan_in((classes,), features, gen)}))
        return phi

    def global_batch(self, device):
        rows = torch.randint(len(self.images), (self.config["batch_size"],),
                             generator=self.sampler)
        pairs = [self.images[int(i)] for i in rows]
        x = torch.stack([image for image, _ in pairs]).to(device)
        y = torch.tensor([label for _, label in pairs], device=device)
        return x, y

    def with_head(self, task, phi, weight, bias):
        tp = task_part(phi)
        weight_key, bias_key = task.head_keys
        return {**task.initial_theta(tp), weight_key: weight, bias_key: bias}, tp

    # -- training ----------------------------------------------------------------------------
    def meta_gradient(self, task, phi, batch):
        x, y = self.global_batch(next(iter(phi.values())).device)

        def loss(phi):
            head = owned_part(phi, GROUP)
            theta, tp = self.with_head(task, phi, head["weight"], head["bias"])
            return task.inner_loss(theta, tp, x, y)

        detached = {k: v.detach() for k, v in phi.items()}
        grads, value = grad(lambda phi: (loss(phi),) * 2, has_aux=True)(detached)
        return MetaGradient(grads, value)

    def after_training(self, task, phi):
        self.choose_step_size(task, phi)

    # -- test ------------------------------------------------------------------------------------
    def adapt_with(self, task, phi, support_x, support_y, steps, step_size):
        weight_key, bias_key = task.head_keys
        old = task.initial_theta(task_part(phi))
        theta, tp = self.with_head(task, phi, torch.zeros_like(old[weight_key]),
                                   torch.zeros_like(old[bias_key]))
        return gradient_descent(task, theta, tp, support_x, support_y, steps, step_size,
                                keys=task.head_keys)

    def adapt(self, task, phi, support_x, support_y, steps):
        return self.adapt_with(task, phi, support_x, support_y, steps,
                               self.current_step_size())
