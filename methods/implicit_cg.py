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
`implicit-neumann` and `implicit-fp` are this class with another `solve`; `imaml` is it
with iMAML's proximal inner problem.
"""

from dataclasses import dataclass

from benchsuite.core.contract import HYPERPARAMETER, META_REPRESENTATION, Method
from benchsuite.core.functional import (
    conjugate_gradient,
    implicit_hypergradient,
    mean_task_hypergradient,
)
from benchsuite.core.settings import Annotated, AtLeast


class ImplicitCG(Method):
    name = "implicit-cg"
    paper = "Pedregosa 2016 (HOAG); Grazzi et al. 2020 (AID-CG)"
    supports = frozenset({HYPERPARAMETER, META_REPRESENTATION})
    accuracy_knob = "cg_steps"

    @dataclass(frozen=True)
    class Settings:
        cg_steps: Annotated[int, AtLeast(1)] = 10
        """Q, the conjugate-gradient steps of the linear solve (step ii)."""

    def inner_problem(self, task):
        """The problem whose inner loss f the solution θ* minimises (step i) and whose
        derivatives the implicit gradient takes: the task itself."""
        return task

    def inner_solution(self, task, phi, support_x, support_y):
        """θ* ≈ θ_T: `inner_steps` steps of gradient descent on the inner problem."""
        return self.adapt(task, phi, support_x, support_y, self.config["inner_steps"])

    def solve(self, apply_hessian, rhs):
        return conjugate_gradient(apply_hessian, rhs, self.config["cg_steps"])

    def meta_gradient(self, task, phi, batch):
        problem = self.inner_problem(task)

        def task_hypergradient(phi, support_x, support_y, query_x, query_y):
            theta = self.inner_solution(task, phi, support_x, support_y)
            return implicit_hypergradient(
                lambda theta, phi: problem.inner_loss(theta, phi, support_x, support_y),
                lambda theta, phi: task.outer_loss(theta, phi, query_x, query_y),
                theta, phi, self.solve)

        return mean_task_hypergradient(task_hypergradient, phi, batch, self.config["batching"])
