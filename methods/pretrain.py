"""Pretraining baseline — joint training on all tasks, then fine-tuning (the "pretrained"
comparison of Finn, Abbeel & Levine, ICML 2017, Section 5.1 and Figure 2).

There is no inner loop during training: one network θ = θ₀(φ) is fit to the pooled data
of every task of the meta-batch, support and query alike,
    L(φ) = 1/B Σ_b f(θ₀(φ), φ; S_b ∪ Q_b)
and the meta-optimiser steps φ with ∇_φ L, which is ordinary multi-task training. At test
time the model is fine-tuned like MAML's: k steps θ ← θ − α ∇_θ f(θ, φ; S) from θ₀(φ).
The paper tuned the fine-tuning step size automatically (its Figure 2 names 0.01 for K = 5
test points, 0.02 for K = 10); here it is the task's inner_lr — 0.01 on the sinusoid, the
α the meta-learners adapt with — and `--set pretrain.inner_lr=…` changes it.
"""

import torch

from benchsuite.core.contract import META_INIT, Method
from benchsuite.core.functional import mean_objective_gradient


class Pretrain(Method):
    name = "pretrain"
    paper = "Finn et al. 2017, 'pretrained on all tasks' baseline"
    supports = frozenset({META_INIT})

    def meta_gradient(self, task, phi, batch):
        def joint_loss(phi, support_x, support_y, query_x, query_y):
            x = torch.cat([support_x, query_x])
            y = torch.cat([support_y, query_y])
            return task.inner_loss(task.initial_theta(phi), phi, x, y)

        return mean_objective_gradient(joint_loss, phi, batch, self.config["batching"])
