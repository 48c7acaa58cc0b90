"""BDA — Bilevel Descent Aggregation (Liu, Mu, Yuan, Zeng & Zhang, ICML 2020, "A Generic
First-Order Algorithmic Framework for Bi-Level Programming Beyond Lower-Level Singleton").

The lower-level iterates follow an aggregation of the upper- and lower-level descent
directions instead of the lower-level gradient alone (Algorithm 1):
    d^F_k = s_u ∇_θ F(θ_k, φ; Q),    d^f_k = s_l ∇_θ f(θ_k, φ; S)
    θ_k+1 = θ_k − (α_k d^F_k + (1 − α_k) d^f_k),      α_k = μ / (k + 1),   k = 0 … T−1
so the upper level steers the choice among lower-level solutions while α_k → 0 hands the
iterates over to the lower level. The hypergradient is dF(θ_T(φ), φ)/dφ by reverse-mode
back-propagation through these T steps. Here s_u = s_l = α (the task's inner step size);
μ is `aggregation_mu`. The aggregation needs the query set, so at test time (no query
labels) `adapt` runs the lower-level descent alone (α_k = 0).
"""

from dataclasses import dataclass

from torch.func import grad

from benchsuite.core.contract import HYPERPARAMETER, META_REPRESENTATION, Method
from benchsuite.core.functional import inner_gradient, mean_objective_gradient
from benchsuite.core.settings import Annotated, Fraction


class BDA(Method):
    name = "bda"
    paper = "Liu et al. 2020 (BDA, Bilevel Descent Aggregation)"
    supports = frozenset({HYPERPARAMETER, META_REPRESENTATION})
    accuracy_knob = "inner_steps"

    @dataclass(frozen=True)
    class Settings:
        aggregation_mu: Annotated[float, Fraction] = 0.5
        """μ: step k weighs the upper-level gradient by α_k = μ / (k + 1)."""

    def aggregated_descent(self, task, phi, support_x, support_y, query_x, query_y):
        step, mu = self.config["inner_lr"], self.config["aggregation_mu"]
        theta = task.initial_theta(phi)
        for k in range(self.config["inner_steps"]):
            alpha_k = mu / (k + 1)
            upper = grad(task.outer_loss)(theta, phi, query_x, query_y)
            lower = inner_gradient(task, theta, phi, support_x, support_y)
            theta = {name: theta[name] - step * (alpha_k * upper[name]
                                                 + (1 - alpha_k) * lower[name])
                     for name in theta}
        return theta

    def meta_gradient(self, task, phi, batch):
        def task_objective(phi, support_x, support_y, query_x, query_y):
            theta = self.aggregated_descent(task, phi, support_x, support_y, query_x, query_y)
            return task.outer_loss(theta, phi, query_x, query_y)

        return mean_objective_gradient(task_objective, phi, batch, self.config["batching"])
