"""Approximate implicit differentiation with conjugate gradient — HOAG (Pedregosa, ICML
2016, "Hyperparameter optimization with approximate gradient"), as implemented in the
AID-CG variant of Grazzi et al. 2020.

For each task, with the inner problem solved approximately by gradient descent:
    θ* ≈ θ_T,   θ_t+1 = θ_t − α ∇_θ f(θ_t, φ)                  (HOAG Alg. 1, step i)
    solve (∂²f/∂θ²)(θ*) v = ∇_θ F(θ*, φ) by Q steps of CG        (step ii)
    dF/dφ ≈ ∂F/∂φ − (∂²f/∂φ∂θ)ᵀ v                                (step iii)
Only Hessian-vector products are needed; CG is exact after dim(θ) steps in exact
arithmetic. HOAG tightens the tolerances over outer iterations; here the inner steps and
CG steps are fixed per run (both overridable with --set).
`implicit-neumann` and `implicit-fp` are this class with another `solve`.
"""

from benchsuite.contract import HYPERPARAMETER, META_REPRESENTATION, Method
from benchsuite.functional import (
    conjugate_gradient,
    gradient_descent,
    implicit_hypergradient,
    mean_task_hypergradient,
)


class ImplicitCG(Method):
    name = "implicit-cg"
    paper = "Pedregosa 2016 (HOAG); Grazzi et al. 2020 (AID-CG)"
    supports = frozenset({HYPERPARAMETER, META_REPRESENTATION})
    hyperparameters = {"cg_steps": 10}
    accuracy_knob = "cg_steps"

    def adapt(self, task, phi, support_x, support_y, steps):
        return gradient_descent(task, task.initial_theta(phi), phi, support_x, support_y,
                                steps, self.config["inner_lr"])

    def solve(self, apply_hessian, rhs):
        return conjugate_gradient(apply_hessian, rhs, self.config["cg_steps"])

    def meta_gradient(self, task, phi, batch):
        def task_hypergradient(phi, support_x, support_y, query_x, query_y):
            theta = self.adapt(task, phi, support_x, support_y, self.config["inner_steps"])
            return implicit_hypergradient(
                lambda theta, phi: task.inner_loss(theta, phi, support_x, support_y),
                lambda theta, phi: task.outer_loss(theta, phi, query_x, query_y),
                theta, phi, self.solve)

        return mean_task_hypergradient(task_hypergradient, phi, batch, self.config["batching"])
