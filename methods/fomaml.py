"""First-order MAML (Finn, Abbeel & Levine, ICML 2017, Section 5.2).

The inner loop is MAML's, θ_k+1 = θ_k − α ∇_θ f(θ_k, φ; S), but every inner gradient is
treated as a constant, so dθ_K/dθ₀ ≈ I and the second-order terms vanish:
    dL/dφ ≈ (∂θ₀/∂φ)ᵀ ∇_θ F(θ_K, φ; Q) + ∂F/∂φ(θ_K, φ; Q)
For a meta-initialisation (θ₀ = φ) this is ∇_θ F evaluated at the adapted parameters.
Nothing is differentiated through the inner loop, so it runs without recording a graph
(the cost and memory of K plain gradient steps), and θ_K enters the meta-objective as
θ₀(φ) + (θ_K − θ₀) with the difference a constant: differentiating F through that gives
the expression above (truncated back-propagation, methods/trhg.py, with no step kept).
"""

import torch

from benchsuite.core.contract import META_INIT, META_REPRESENTATION
from benchsuite.core.functional import mean_objective_gradient
from benchsuite.methods.maml import MAML


class FOMAML(MAML):
    name = "fomaml"
    aliases = ()
    paper = "Finn et al. 2017, first-order approximation (Section 5.2)"
    supports = frozenset({META_INIT, META_REPRESENTATION})
    first_order = True

    def meta_gradient(self, task, phi, batch):
        def task_objective(phi, support_x, support_y, query_x, query_y):
            start = task.initial_theta(phi)
            with torch.no_grad():  # θ_K − θ₀ as a constant: no graph through the inner loop
                adapted = self.adapt(task, phi, support_x, support_y,
                                     self.config["inner_steps"])
                moved = {k: adapted[k] - start[k] for k in adapted}
            theta = {k: start[k] + moved[k] for k in start}        # dθ_K/dθ₀ = I
            return task.outer_loss(theta, phi, query_x, query_y)

        return mean_objective_gradient(task_objective, phi, batch, self.config["batching"])
