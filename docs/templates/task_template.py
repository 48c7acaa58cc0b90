"""TEMPLATE task — copy this file to tasks/<your_task>.py and edit it.

This docstring is the task's documentation: name the paper whose protocol the defaults
follow and define the bilevel problem with the symbols of the contract
(benchsuite/core/contract.py): meta-parameters φ, task parameters θ with θ₀(φ), the inner loss
f(θ, φ; support), the outer loss F(θ, φ; query) and the metric a test episode is scored by.

What is below is a complete, working task so that the copy runs before you change
anything: linear regression tasks y = xᵀw_t + b_t + ε with w_t ~ N(1, σ²I), b_t ~ N(0, σ²)
and ε ~ N(0, noise²), a linear model θ = (weight, bias) whose initialisation φ is
meta-learned (θ₀(φ) = φ), f = F = mean squared error on the support / query points, and the
metric the squared error of each query point.

    benchsuite run --plugins docs/templates --methods maml,fomaml --tasks template-task

This file lives in docs/templates/, which the registry does not search (it loads methods/,
tasks/ and the folders given with --plugins), so the template is never part of a grid.
"""

from dataclasses import dataclass

import torch

from benchsuite.core.contract import META_INIT, EpisodeBatch, Task
from benchsuite.core.settings import Annotated, AtLeast


class TemplateTask(Task):
    # The registry name (`--tasks template-task`).
    name = "template-task"
    # META_INIT (φ is θ's initialisation), META_REPRESENTATION (φ is shared, θ a head) or
    # HYPERPARAMETER (φ sets the inner problem): which methods apply follows from it.
    kind = META_INIT
    paper = "Author et al. YEAR, Section N"
    metric = "mse"            # the name of what `score` returns per example
    higher_is_better = False
    # The paper's set-up of the runner's keys; the first five are required. Every key can
    # be overridden with `--set key=value` or `--set template-task.key=value`.
    defaults = {
        "inner_steps": 5, "inner_lr": 0.1,          # the inner loop during meta-training
        "meta_batch": 10, "meta_lr": 1e-2,          # tasks per meta-step, meta step size
        "iterations": 1000,                         # meta-iterations (--budget paper)
        "eval_steps": (1, 10),                      # further step counts to score at
        # (a test episode is scored after `inner_steps` steps, the trained number,
        # unless a protocol file names `eval_inner_steps`)
    }

    @dataclass(frozen=True)
    class Settings:
        """The task's own keys, with the paper's values: each field's type and range are
        checked at planning, and the string under it is what `benchsuite list --settings
        template-task` shows. Their defaults join `defaults`. A key must not repeat one of
        the runner's."""

        features: Annotated[int, AtLeast(1)] = 8
        """Input dimension of the regression."""
        shots: Annotated[int, AtLeast(1)] = 10
        """Support points per task."""
        query: Annotated[int, AtLeast(1)] = 20
        """Query points per task."""
        task_spread: Annotated[float, AtLeast(0)] = 1.0
        """σ, the spread of the tasks' weights around 1 and biases around 0."""
        noise: Annotated[float, AtLeast(0)] = 0.1
        """Standard deviation of the label noise ε."""

    # What `--budget quick` (the default) changes, so that a CPU run takes seconds.
    quick = {"iterations": 100}
    # θ's keys of the final layer, for head-only methods (ANIL); () if there is no head.
    head_keys = ("weight", "bias")

    # Checks that involve several keys (min < max, shots < samples) go in
    # `check_config(cls, config)`, a classmethod returning one line per problem.

    # Tasks that read data from disk also override `check_data(config)`: return one line
    # saying what to put where, or None when the data is there (see benchsuite/blocks/fewshot.py).

    def init_meta_params(self, generator):
        """φ₀, drawn from `generator` only: every method of a seed starts from it."""
        features = self.config["features"]
        return {"weight": torch.randn(features, generator=generator) * 0.1,
                "bias": torch.zeros(())}

    def initial_theta(self, phi):
        return dict(phi)  # a meta-initialisation: θ₀(φ) = φ

    def predict(self, theta, x):
        return x @ theta["weight"] + theta["bias"]

    # The losses and the score take one task (x: points × features); methods vmap or loop
    # them over the meta-batch.
    def inner_loss(self, theta, phi, x, y):
        return ((self.predict(theta, x) - y) ** 2).mean()

    def outer_loss(self, theta, phi, x, y):
        return self.inner_loss(theta, phi, x, y)

    def score(self, theta, phi, x, y):
        return (self.predict(theta, x) - y) ** 2  # one value per query point

    def sample_batch(self, split, size, generator):
        """`size` episodes of `split` stacked on a leading dimension, drawn from `generator`
        only. A synthetic task draws every split from one family; a data set task keeps
        its train / validation / test classes apart."""
        c = self.config
        points = c["shots"] + c["query"]
        weight = 1 + c["task_spread"] * torch.randn(size, c["features"], generator=generator)
        bias = c["task_spread"] * torch.randn(size, 1, generator=generator)
        x = torch.randn(size, points, c["features"], generator=generator)
        noise = c["noise"] * torch.randn(size, points, generator=generator)
        y = torch.einsum("tpf,tf->tp", x, weight) + bias + noise
        shots = c["shots"]
        return EpisodeBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
