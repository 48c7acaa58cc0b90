"""First-order MAML (Finn, Abbeel & Levine, ICML 2017, Section 5.2).

The inner loop is MAML's, θ_k+1 = θ_k − α ∇_θ f(θ_k, φ; S), but every inner gradient is
treated as a constant, so dθ_K/dθ₀ ≈ I and the second-order terms vanish:
    dL/dφ ≈ (∂θ₀/∂φ)ᵀ ∇_θ F(θ_K, φ; Q) + ∂F/∂φ(θ_K, φ; Q)
For a meta-initialisation (θ₀ = φ) this is ∇_θ F evaluated at the adapted parameters.
Since nothing is differentiated through the inner loop, it runs without recording a
graph (its cost and memory are those of K plain gradient steps), and the expression above
is assembled directly: ∇_(θ,φ) F at θ_K, then ∇_θ F pulled back through θ₀(φ).
"""

import torch
from torch.func import grad, vjp

from benchsuite.contract import META_INIT, META_REPRESENTATION
from benchsuite.functional import mean_task_hypergradient, tree_add, tree_detach
from benchsuite.methods.maml import MAML


class FOMAML(MAML):
    name = "fomaml"
    aliases = ()
    paper = "Finn et al. 2017, first-order approximation (Section 5.2)"
    supports = frozenset({META_INIT, META_REPRESENTATION})
    first_order = True

    def meta_gradient(self, task, phi, batch):
        def task_hypergradient(phi, support_x, support_y, query_x, query_y):
            with torch.no_grad():  # θ_K as a constant: no graph through the inner loop
                theta = self.adapt(task, tree_detach(phi), support_x, support_y,
                                   self.config["inner_steps"])

            def outer_and_value(theta, phi):
                value = task.outer_loss(theta, phi, query_x, query_y)
                return value, value

            (outer_grad_theta, outer_grad_phi), outer_value = grad(
                outer_and_value, argnums=(0, 1), has_aux=True)(theta, phi)
            _, pull_back = vjp(task.initial_theta, phi)
            (through_start,) = pull_back(outer_grad_theta)   # (∂θ₀/∂φ)ᵀ ∇_θ F
            return tree_add(through_start, outer_grad_phi), outer_value

        return mean_task_hypergradient(task_hypergradient, phi, batch, self.config["batching"])
