"""Sinusoid regression (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", Section 5.1 and Appendix A.1).

A task is y = A sin(x − b) with amplitude A ~ U[0.1, 5], phase b ~ U[0, π]; inputs
x ~ U[−5, 5]. The model is an MLP 1-40-40-1 with ReLU; the loss is the mean squared error.
Protocol: K = 10 support points, one inner gradient step with α = 0.01, meta-batch 25,
Adam with β = 1e-3, 70,000 meta-iterations. At test time the model is adapted on K points
and scored by MSE on held-out points of the same sine after 1, 5 and 10 steps.
"""

import math

import torch

from benchsuite.contract import META_INIT, EpisodeBatch, Task
from benchsuite.models import mlp_forward, mlp_head_keys, mlp_init, mlp_layers


class Sinusoid(Task):
    name = "sinusoid"
    kind = META_INIT
    paper = "Finn et al. 2017 (MAML), sinusoid regression"
    metric = "mse"
    higher_is_better = False
    defaults = {
        "shots": 10,              # K support points per task
        "query": 10,              # query points per training task
        "test_shots": 10,         # support points of a test episode
        "test_query": 100,        # scored points of a test episode
        "amplitude_min": 0.1, "amplitude_max": 5.0,
        "phase_min": 0.0, "phase_max": math.pi,
        "x_min": -5.0, "x_max": 5.0,
        "hidden": 40,
        "inner_steps": 1, "inner_lr": 0.01,
        "meta_batch": 25, "meta_lr": 1e-3, "meta_optimizer": "adam",
        "iterations": 70000,
        "eval_inner_steps": 1, "eval_steps": (1, 5, 10),
    }
    quick = {"iterations": 2000}
    head_keys = mlp_head_keys(mlp_init([1, 40, 40, 1], torch.Generator()))
    layer_transforms = True

    @classmethod
    def check_config(cls, config):
        problems = super().check_config(config)
        for key in ("shots", "query", "test_shots", "test_query", "hidden"):
            if config[key] < 1:
                problems.append(f"{key} must be at least 1 (got {config[key]})")
        return problems

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

    def sample_batch(self, split, size, generator):
        c = self.config
        shots, query = ((c["shots"], c["query"]) if split == "train"
                        else (c["test_shots"], c["test_query"]))
        amplitude = c["amplitude_min"] + (c["amplitude_max"] - c["amplitude_min"]) * torch.rand(
            size, 1, 1, generator=generator)
        phase = c["phase_min"] + (c["phase_max"] - c["phase_min"]) * torch.rand(
            size, 1, 1, generator=generator)
        x = c["x_min"] + (c["x_max"] - c["x_min"]) * torch.rand(
            size, shots + query, 1, generator=generator)
        y = amplitude * torch.sin(x - phase)
        return EpisodeBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
