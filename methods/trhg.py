"""Truncated reverse-mode hypergradient, K-RMD (Shaban, Cheng, Hatch & Boots, AISTATS 2019,
"Truncated Back-propagation for Bilevel Optimization").

The inner dynamics are T steps of gradient descent, θ_t+1 = Φ(θ_t, φ) = θ_t − α ∇_θ f(θ_t, φ).
Full reverse mode (RHG) back-propagates through all T steps:
    dF/dφ = ∂F/∂φ + Σ_{t=1..T} B_t A_t+1 ⋯ A_T ∇_θ F(θ_T),   A_t = ∂Φ/∂θ_t−1, B_t = ∂Φ/∂φ
K-RMD keeps only the last K terms of the sum:
    h_K = ∂F/∂φ + Σ_{t=T−K+1..T} B_t A_t+1 ⋯ A_T ∇_θ F(θ_T),
which is reverse mode with θ_T−K treated as a constant. K = T recovers RHG exactly; for
a strongly convex inner problem the bias decays geometrically in K (Shaban et al.).
For a meta-initialisation (θ₀ = φ), cutting the graph at θ_T−K would leave φ without a
gradient, so the truncated Jacobian ∂θ_T−K/∂θ₀ is taken as the identity, as first-order
MAML takes all of them: θ_T−K enters the graph as θ₀ + const. Then K = T is MAML; K = 0
would be first-order MAML, so `truncate_steps` starts at 1 (`fomaml` runs K = 0). Where θ₀
does not depend on φ (hyperparameters, representations) this changes nothing.
"""

from dataclasses import dataclass

import torch

from benchsuite.core.contract import HYPERPARAMETER, META_INIT, META_REPRESENTATION, Method
from benchsuite.core.functional import gradient_descent, mean_objective_gradient
from benchsuite.core.settings import Annotated, AtLeast


class TRHG(Method):
    name = "trhg"
    paper = "Shaban et al. 2019 (truncated back-propagation, K-RMD)"
    supports = frozenset({META_INIT, HYPERPARAMETER, META_REPRESENTATION})
    accuracy_knob = "truncate_steps"

    @dataclass(frozen=True)
    class Settings:
        truncate_steps: Annotated[int, AtLeast(1)] = 10
        """K, the last inner steps back-propagated through (the paper sweeps K ∈ {1, …, T};
        K ≥ T is full reverse mode)."""

    def meta_gradient(self, task, phi, batch):
        total = self.config["inner_steps"]
        kept = min(self.config["truncate_steps"], total)

        def task_objective(phi, support_x, support_y, query_x, query_y):
            start = task.initial_theta(phi)
            with torch.no_grad():  # the first T − K steps are not back-propagated: no graph
                theta = gradient_descent(task, start, phi, support_x, support_y,
                                         total - kept, self.config["inner_lr"])
            theta = {k: start[k] + (theta[k] - start[k]).detach() for k in theta}  # ∂θ_T−K/∂θ₀ ≈ I
            theta = gradient_descent(task, theta, phi, support_x, support_y, kept,
                                     self.config["inner_lr"])
            return task.outer_loss(theta, phi, query_x, query_y)

        return mean_objective_gradient(task_objective, phi, batch, self.config["batching"])
