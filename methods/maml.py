"""MAML — Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017), second order;
equivalently RHG, the reverse-mode hypergradient (Franceschi et al., ICML 2017 "Forward
and Reverse Gradient-Based Hyperparameter Optimization"; ICML 2018 "Bilevel Programming
for Hyperparameter Optimization and Meta-Learning") when φ is a hyperparameter or a
representation rather than an initialisation.

For each task b of the meta-batch, with support S_b and query Q_b:
    θ_b,0 = θ₀(φ)
    θ_b,k+1 = θ_b,k − α ∇_θ f(θ_b,k, φ; S_b)             k = 0 … K−1      (Alg. 2, line 6)
    L(φ) = 1/B Σ_b F(θ_b,K(φ), φ; Q_b)
    dL/dφ by reverse-mode differentiation through all K steps            (Alg. 2, line 8)
The meta-optimiser (Adam in the paper) then steps φ with dL/dφ.
"""

from benchsuite.core.contract import HYPERPARAMETER, META_INIT, META_REPRESENTATION, Method
from benchsuite.core.functional import mean_objective_gradient


class MAML(Method):
    name = "maml"
    aliases = ("rhg",)
    paper = "Finn et al. 2017 (MAML); Franceschi et al. 2017/2018 (RHG)"
    supports = frozenset({META_INIT, META_REPRESENTATION, HYPERPARAMETER})
    accuracy_knob = "inner_steps"

    def meta_gradient(self, task, phi, batch):
        def task_objective(phi, support_x, support_y, query_x, query_y):
            theta = self.adapt(task, phi, support_x, support_y, self.config["inner_steps"])
            return task.outer_loss(theta, phi, query_x, query_y)

        return mean_objective_gradient(task_objective, phi, batch, self.config["batching"])
