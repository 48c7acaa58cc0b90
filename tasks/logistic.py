"""Logistic-curve regression, the task family of the Reptile-Torch write-up (a PyTorch
Reptile tutorial after Nichol et al. 2018), in the style of MAML's sinusoid (Finn et al.
2017, Section 5.1).

A task is y = L / (1 + exp(−k (x − x₀))) with L, k and x₀ drawn uniformly (ranges below);
its `samples` = 100 inputs are drawn uniformly from [−r, r] with the sample radius r = 4
(or, with `inputs = "grid"`, are the evenly spaced grid of [−r, r] that Reptile-Torch
uses, in a random order per task), `shots` of them form the support set and the rest the
query set. The model is an MLP 1-64-64-1 with ReLU by default (`hidden`,
`hidden_layers`, `activation`); the loss and the metric are the mean squared error
(benchsuite/blocks/regression.py). Beside it, every test episode records Reptile-Torch's own
score, `support_loss_drop`: |f(θ₀; S) − f(θ; S)|, how much adaptation lowered the loss on
the support points it adapted on (Reptile-Torch's `Reptile.eval` divides it by a "sample
size"; docs/protocols.md). Test episodes are also scored after 1, 2, …, 10 steps
(`eval_steps`, diagnostics).
"""

from dataclasses import dataclass
from typing import Literal

import torch

from benchsuite.blocks.regression import MLPRegression
from benchsuite.core.contract import EpisodeBatch
from benchsuite.core.settings import Annotated, AtLeast, Positive


class Logistic(MLPRegression):
    name = "logistic"
    paper = "Reptile-Torch logistic curves (after Nichol et al. 2018)"

    @dataclass(frozen=True)
    class Settings:
        """The curves and points of an episode, and the network's width."""

        sample_radius: Annotated[float, Positive] = 4.0
        """r: the inputs are x ~ U[−r, r]."""
        samples: Annotated[int, AtLeast(2)] = 100
        """Points drawn per task, training and test episodes alike."""
        shots: Annotated[int, AtLeast(1)] = 10
        """Of the `samples` points, those in the support set; the rest are the query."""
        height_min: float = 0.5
        """Lower end of the height L ~ U[height_min, height_max]."""
        height_max: float = 2.0
        """Upper end of the height L."""
        slope_min: float = 0.5
        """Lower end of the slope k ~ U[slope_min, slope_max]."""
        slope_max: float = 2.0
        """Upper end of the slope k."""
        midpoint_min: float = -2.0
        """Lower end of the midpoint x₀ ~ U[midpoint_min, midpoint_max]."""
        midpoint_max: float = 2.0
        """Upper end of the midpoint x₀."""
        inputs: Literal["uniform", "grid"] = "uniform"
        """Where the points lie: drawn uniformly from [−r, r], or the `samples` evenly
        spaced points from −r to r (the same for every task), shuffled per task."""
        hidden: Annotated[int, AtLeast(1)] = 64
        """Units in each of the MLP's hidden layers."""
        hidden_layers: Annotated[int, AtLeast(1)] = 2
        """The MLP's hidden layers."""
        activation: Literal["relu", "tanh"] = "relu"
        """The hidden layers' nonlinearity."""

    defaults = {
        "inner_steps": 5, "inner_lr": 0.02,
        "meta_batch": 10, "meta_lr": 1e-3, "meta_optimizer": "adam",
        "iterations": 30000,
        "eval_inner_steps": 5, "eval_steps": tuple(range(1, 11)),
    }
    quick = {"iterations": 2000}
    extra_metrics = ("support_loss_drop",)

    @classmethod
    def check_config(cls, config):
        problems = super().check_config(config)
        if not config["shots"] < config["samples"]:
            problems.append(f"need shots < samples, leaving query points (got "
                            f"shots={config['shots']}, samples={config['samples']})")
        for name in ("height", "slope", "midpoint"):
            if config[f"{name}_min"] > config[f"{name}_max"]:
                problems.append(f"{name}_min must not exceed {name}_max")
        return problems

    def layer_sizes(self):
        c = self.config
        return [1, *[c["hidden"]] * c["hidden_layers"], 1]

    def activation(self):
        return self.config["activation"]

    def adaptation_metrics(self, theta_start, theta, phi, support_x, support_y):
        before = self.inner_loss(theta_start, phi, support_x, support_y)
        after = self.inner_loss(theta, phi, support_x, support_y)
        return {"support_loss_drop": (before - after).abs()}

    def uniform(self, name: str, shape: tuple[int, ...], generator: torch.Generator):
        low, high = self.config[f"{name}_min"], self.config[f"{name}_max"]
        return low + (high - low) * torch.rand(shape, generator=generator)

    def sample_batch(self, split, size, generator):
        c = self.config
        height = self.uniform("height", (size, 1, 1), generator)
        slope = self.uniform("slope", (size, 1, 1), generator)
        midpoint = self.uniform("midpoint", (size, 1, 1), generator)
        radius = c["sample_radius"]
        if c["inputs"] == "grid":
            grid = torch.linspace(-radius, radius, c["samples"])
            x = grid[torch.rand(size, c["samples"], generator=generator).argsort(dim=1)]
            x = x.unsqueeze(-1)
        else:
            x = (2 * torch.rand(size, c["samples"], 1, generator=generator) - 1) * radius
        y = height * torch.sigmoid(slope * (x - midpoint))
        k = c["shots"]
        return EpisodeBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])
