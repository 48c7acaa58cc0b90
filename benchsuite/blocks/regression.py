"""The base of the MLP regression tasks (`sinusoid`, after Finn et al. 2017, "Model-Agnostic
Meta-Learning for Fast Adaptation of Deep Networks", Section 5.1; `logistic`, the
Reptile-Torch task family): a scalar function y(x) per task, fitted by an MLP (1-h-h-1
with ReLU unless the task says otherwise) whose parameters are φ (θ₀ = φ), with the mean
squared error as inner loss, outer loss and metric.

A task file adds its protocol (`defaults`, a `Settings` that declares `hidden`, the width
h), `sample_batch`, which draws the functions and their points, and, for another network,
`layer_sizes` and `activation`. The base lives in
benchsuite/ rather than tasks/ so that it is part of the identity of every record made
with it (benchsuite.storage.identity hashes the engine modules a plugin imports).
"""

from __future__ import annotations

from benchsuite.blocks.models import mlp_forward, mlp_init, mlp_layers
from benchsuite.core.contract import META_INIT, Task


class MLPRegression(Task):
    kind = META_INIT
    metric = "mse"
    higher_is_better = False
    layer_transforms = True

    def layer_sizes(self) -> list[int]:
        """The network's widths from input to output: 1-h-h-1 with h = `hidden`."""
        hidden = self.config["hidden"]
        return [1, hidden, hidden, 1]

    def activation(self) -> str:
        """The hidden layers' nonlinearity (benchsuite.models.ACTIVATIONS)."""
        return "relu"

    @property
    def head_keys(self) -> tuple[str, ...]:  # type: ignore[override]  # depends on the depth
        last = len(self.layer_sizes()) - 2  # layers.0 … layers.{last}
        return (f"layers.{last}.weight", f"layers.{last}.bias")

    def init_meta_params(self, generator):
        return mlp_init(self.layer_sizes(), generator)

    def initial_theta(self, phi):
        return dict(phi)

    def layers(self, theta):
        return mlp_layers(theta)

    def inner_loss(self, theta, phi, x, y, transforms=None):
        return ((mlp_forward(theta, x, transforms, self.activation()) - y) ** 2).mean()

    outer_loss = inner_loss

    def score(self, theta, phi, x, y, transforms=None):
        return ((mlp_forward(theta, x, transforms, self.activation()) - y) ** 2).squeeze(-1)
