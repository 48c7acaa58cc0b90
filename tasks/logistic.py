"""Logistic-curve regression, the task family of the Reptile-Torch write-up (a PyTorch
Reptile tutorial after Nichol et al. 2018), in the style of MAML's sinusoid (Finn et al.
2017, Section 5.1).

A task is y = L / (1 + exp(−k (x − x₀))) with L, k and x₀ drawn uniformly (ranges below);
its `samples` = 100 inputs are drawn uniformly from [−r, r] with the sample radius r = 4,
`shots` of them form the support set and the rest the query set. The model is an MLP
1-64-64-1 with ReLU; the loss and the metric are the mean squared error. The write-up's
evaluation range (1, 11) is `eval_steps`: test episodes are scored after 1, 2, …, 10
inner steps.
"""

import torch

from benchsuite.contract import META_INIT, EpisodeBatch, Task
from benchsuite.models import mlp_forward, mlp_head_keys, mlp_init


class Logistic(Task):
    name = "logistic"
    kind = META_INIT
    paper = "Reptile-Torch logistic curves (after Nichol et al. 2018)"
    metric = "mse"
    higher_is_better = False
    defaults = {
        "sample_radius": 4.0,             # inputs x ~ U[−r, r]
        "samples": 100,                   # points drawn per task
        "shots": 10,                      # of which support; the rest are the query
        "height_min": 0.5, "height_max": 2.0,       # L
        "slope_min": 0.5, "slope_max": 2.0,         # k
        "midpoint_min": -2.0, "midpoint_max": 2.0,  # x₀
        "hidden": 64,
        "inner_steps": 5, "inner_lr": 0.02,
        "meta_batch": 10, "meta_lr": 1e-3, "meta_optimizer": "adam",
        "iterations": 30000,
        "eval_inner_steps": 5, "eval_steps": tuple(range(1, 11)),
    }
    quick = {"iterations": 2000}
    head_keys = mlp_head_keys(mlp_init([1, 64, 64, 1], torch.Generator()))

    @classmethod
    def check_config(cls, config):
        problems = super().check_config(config)
        if not 1 <= config["shots"] < config["samples"]:
            problems.append(f"need 1 <= shots < samples (got shots={config['shots']}, "
                            f"samples={config['samples']})")
        if config["hidden"] < 1 or not config["sample_radius"] > 0:
            problems.append("hidden must be at least 1 and sample_radius positive")
        for name in ("height", "slope", "midpoint"):
            if config[f"{name}_min"] > config[f"{name}_max"]:
                problems.append(f"{name}_min must not exceed {name}_max")
        return problems

    def init_meta_params(self, generator):
        hidden = self.config["hidden"]
        return mlp_init([1, hidden, hidden, 1], generator)

    def initial_theta(self, phi):
        return dict(phi)

    def inner_loss(self, theta, phi, x, y):
        return ((mlp_forward(theta, x) - y) ** 2).mean()

    outer_loss = inner_loss

    def score(self, theta, phi, x, y):
        return ((mlp_forward(theta, x) - y) ** 2).squeeze(-1)

    def uniform(self, name: str, shape: tuple[int, ...], generator: torch.Generator):
        low, high = self.config[f"{name}_min"], self.config[f"{name}_max"]
        return low + (high - low) * torch.rand(shape, generator=generator)

    def sample_batch(self, split, size, generator):
        c = self.config
        height = self.uniform("height", (size, 1, 1), generator)
        slope = self.uniform("slope", (size, 1, 1), generator)
        midpoint = self.uniform("midpoint", (size, 1, 1), generator)
        radius = c["sample_radius"]
        x = (2 * torch.rand(size, c["samples"], 1, generator=generator) - 1) * radius
        y = height * torch.sigmoid(slope * (x - midpoint))
        k = c["shots"]
        return EpisodeBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])
