"""The base of the MLP regression tasks (`sinusoid`, after Finn et al. 2017, "Model-Agnostic
Meta-Learning for Fast Adaptation of Deep Networks", Section 5.1; `logistic`, the
Reptile-Torch task family): a scalar function y(x) per task, fitted by a ReLU MLP
1-h-h-1 whose parameters are φ (θ₀ = φ), with the mean squared error as inner loss, outer
loss and metric.

A task file adds its protocol (`defaults`, a `Settings` that declares `hidden`, the width
h) and `sample_batch`, which draws the functions and their points. The base lives in
benchsuite/ rather than tasks/ so that it is part of the identity of every record made
with it (benchsuite.storage.identity hashes the engine modules a plugin imports).
"""

from __future__ import annotations

import torch

from benchsuite.blocks.models import mlp_forward, mlp_head_keys, mlp_init, mlp_layers
from benchsuite.core.contract import META_INIT, Task


class MLPRegression(Task):
    kind = META_INIT
    metric = "mse"
    higher_is_better = False
    # The key names depend on the depth only, not on the width `hidden`.
    head_keys = mlp_head_keys(mlp_init([1, 1, 1, 1], torch.Generator()))
    layer_transforms = True

    def init_meta_params(self, generator):
        hidden = self.config["hidden"]
        return mlp_init([1, hidden, hidden, 1], generator)

    def initial_theta(self, phi):
        return dict(phi)

    def layers(self, theta):
        return mlp_layers(theta)

    def inner_loss(self, theta, phi, x, y, transforms=None):
        return ((mlp_forward(theta, x, transforms) - y) ** 2).mean()

    outer_loss = inner_loss

    def score(self, theta, phi, x, y, transforms=None):
        return ((mlp_forward(theta, x, transforms) - y) ** 2).squeeze(-1)
