"""Meta-SGD (Li, Zhou, Chen & Li 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot
Learning").

Next to the initialisation θ₀ = θ₀(φ), Meta-SGD meta-learns a step size for every
coordinate of θ, a tensor α of θ's shape that sets both the direction and the size of the
inner update. For each task b of the meta-batch, with support S_b and query Q_b:
    θ_b,k+1 = θ_b,k − α ⊙ ∇_θ f(θ_b,k, φ; S_b)       k = 0 … K−1     (Algorithm 1; K = 1)
    L(φ, α) = 1/B Σ_b F(θ_b,K(φ, α), φ; Q_b)
    (φ, α) ← (φ, α) − β ∇_(φ,α) L
The hypergradient is exact: reverse mode through all K steps, second order. α is drawn
uniformly from [alpha_init_low, alpha_init_high], the paper's [0.005, 0.1];
setting both bounds to the task's inner step size gives learn2learn's MetaSGD start. At test
time the task is adapted with the learned α.
"""

from dataclasses import dataclass

import torch

from benchsuite.core.contract import (
    META_INIT,
    META_REPRESENTATION,
    Method,
    owned,
    owned_part,
    task_part,
)
from benchsuite.core.functional import gradient_descent, mean_objective_gradient
from benchsuite.core.settings import Annotated, AtLeast

STEP_SIZES = "alpha"


class MetaSGD(Method):
    name = "metasgd"
    paper = "Li et al. 2017 (Meta-SGD)"
    supports = frozenset({META_INIT, META_REPRESENTATION})
    # its inner step sizes are α, started in this range (`inner_lr` is unused): what
    # `benchsuite tune` scales as its step size
    inner_step_keys = ("alpha_init_low", "alpha_init_high")

    @dataclass(frozen=True)
    class Settings:
        alpha_init_low: Annotated[float, AtLeast(0)] = 0.005
        """The lower end of the uniform range α₀ is drawn from, for every parameter."""
        alpha_init_high: Annotated[float, AtLeast(0)] = 0.1
        """The upper end of that range."""

    def init_meta_params(self, task, generator):
        phi = task.init_meta_params(generator)
        low, high = self.config["alpha_init_low"], self.config["alpha_init_high"]
        alpha = {k: low + (high - low) * torch.rand(v.shape, generator=generator, dtype=v.dtype)
                 for k, v in task.initial_theta(phi).items()}
        return {**phi, **owned(STEP_SIZES, alpha)}

    def adapt(self, task, phi, support_x, support_y, steps):
        task_phi = task_part(phi)
        return gradient_descent(task, task.initial_theta(task_phi), task_phi, support_x,
                                support_y, steps, owned_part(phi, STEP_SIZES))

    def meta_gradient(self, task, phi, batch):
        def task_objective(phi, support_x, support_y, query_x, query_y):
            theta = self.adapt(task, phi, support_x, support_y, self.config["inner_steps"])
            return task.outer_loss(theta, task_part(phi), query_x, query_y)

        return mean_objective_gradient(task_objective, phi, batch, self.config["batching"])
