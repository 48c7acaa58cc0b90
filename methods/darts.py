"""DARTS' second-order hypergradient (Liu, Simonyan & Yang, ICLR 2019, "DARTS: Differentiable
Architecture Search", Section 2.3): one unrolled inner step, with the Hessian-vector product
replaced by a central finite difference.

With inner weights w (the paper's network weights, here θ) and hyperparameters φ (the
architecture α), ξ the inner step size:
    w'  = w − ξ ∇_w f(w, φ)
    dF/dφ ≈ ∇_φ F(w', φ) − ξ ∇²_{φ,w} f(w, φ) ∇_w' F(w', φ)
    ∇²_{φ,w} f(w, φ) u ≈ [∇_φ f(w⁺, φ) − ∇_φ f(w⁻, φ)] / 2ε,
        w± = w ± ε u,   u = ∇_w' F(w', φ),   ε = 0.01 / ‖u‖
DARTS carries w across outer steps; a benchmark trial restarts every task from θ₀, so w is
the task's inner iterate after T gradient steps (T = inner_steps, the accuracy knob: the
closer w is to the inner optimum, the closer the estimate is to the one-term Neumann
approximation of the implicit hypergradient; it never becomes exact).

On a meta-initialisation task φ enters the inner problem only through θ₀, which DARTS
does not differentiate, so there it needs φ inside the inner loss: the proximal inner
problem of iMAML, f(θ) + λ/2 ‖θ − φ‖² (λ = `proximal_lambda`), as Betty's iMAML example
runs with its `darts` hypergradient (benchsuite/protocols/named/betty-imaml.toml). Then
∇²_{φ,w} f u = −λ u and the estimate is ξ λ ∇_w' F(w', φ) through the same difference.
Test-time adaptation runs the same inner loop unless `test_proximal` is false.

Betty (leopard-ai/betty, betty/hypergradient/darts.py, release 0.2.1) reads the estimate
"from the implicit differentiation perspective" instead: no unrolled step and no ξ, the
inverse Hessian of the implicit gradient replaced by the identity,
    dF/dφ ≈ ∂F/∂φ − ∇²_{φ,w} f(w, φ) u,   u = ∇_w F(w, φ)
with the same central difference (`unrolled_step = false`; on the proximal problem,
λ ∇_w F(w, φ)).
"""

from dataclasses import dataclass

import torch
from torch.func import grad, grad_and_value

from benchsuite.core.contract import HYPERPARAMETER, META_INIT, META_REPRESENTATION, Method
from benchsuite.core.functional import (
    gradient_descent,
    gradient_step,
    inner_gradient,
    mean_task_hypergradient,
    tree_add,
    tree_detach,
    tree_dot,
)
from benchsuite.core.settings import Annotated, Positive
from benchsuite.methods.imaml import ProximalProblem


class DARTS(Method):
    name = "darts"
    paper = "Liu et al. 2019 (DARTS, second-order approximation)"
    supports = frozenset({HYPERPARAMETER, META_REPRESENTATION, META_INIT})
    accuracy_knob = "inner_steps"

    @dataclass(frozen=True)
    class Settings:
        """The finite difference and the proximal weight. ξ, the step of the unrolled
        inner step, is the engine's inner step α = inner_lr: DARTS takes ξ equal to the
        learning rate of the weights' optimiser (Liu et al. 2019, Section 2.3), so it is
        no key of its own."""

        fd_scale: Annotated[float, Positive] = 0.01
        """The finite-difference scale: ε = fd_scale / ‖∇_w' F‖ (the paper's 0.01)."""
        proximal_lambda: Annotated[float, Positive] = 0.01
        """λ of the proximal inner problem on meta-initialisation tasks (Betty's iMAML
        example); unused elsewhere."""
        unrolled_step: bool = True
        """Whether the estimate takes the paper's unrolled step w' = w − ξ ∇_w f and
        scales the mixed term by ξ; false is Betty's reading (no step, no ξ)."""
        test_proximal: bool = True
        """Whether test-time adaptation on a meta-initialisation task keeps the proximal
        term (false: plain gradient descent from φ, as Betty's iMAML example tests)."""

    def inner_problem(self, task):
        """The problem whose inner loss w is trained on: the task's, or on
        meta-initialisation tasks iMAML's proximal problem (φ enters only through it)."""
        if task.kind == META_INIT:
            return ProximalProblem(task, self.config["proximal_lambda"])
        return task

    def inner_solution(self, task, phi, support_x, support_y):
        """w: `inner_steps` gradient steps on the inner problem from θ₀."""
        return gradient_descent(self.inner_problem(task), task.initial_theta(phi), phi,
                                support_x, support_y, self.config["inner_steps"],
                                self.config["inner_lr"])

    def adapt(self, task, phi, support_x, support_y, steps):
        problem = self.inner_problem(task) if self.config["test_proximal"] else task
        return gradient_descent(problem, task.initial_theta(phi), phi, support_x, support_y,
                                steps, self.config["inner_lr"])

    def meta_gradient(self, task, phi, batch):
        unrolled = self.config["unrolled_step"]
        xi = self.config["inner_lr"] if unrolled else 1.0
        problem = self.inner_problem(task)

        def task_hypergradient(phi, support_x, support_y, query_x, query_y):
            def inner_loss(theta, phi):
                return problem.inner_loss(theta, phi, support_x, support_y)

            w = tree_detach(self.inner_solution(task, phi, support_x, support_y))
            w_unrolled = gradient_step(w, inner_gradient(problem, w, phi, support_x,
                                                         support_y), xi) if unrolled else w
            (u, outer_grad_phi), outer_value = grad_and_value(task.outer_loss, argnums=(0, 1))(
                w_unrolled, phi, query_x, query_y)
            epsilon = self.config["fd_scale"] / torch.sqrt(tree_dot(u, u)).clamp_min(1e-30)

            def inner_grad_phi(weights):
                return grad(inner_loss, argnums=1)(weights, phi)

            plus = inner_grad_phi(tree_add(w, u, epsilon))
            minus = inner_grad_phi(tree_add(w, u, -epsilon))
            mixed = {k: (plus[k] - minus[k]) / (2 * epsilon) for k in plus}
            return tree_add(outer_grad_phi, mixed, -xi), outer_value

        return mean_task_hypergradient(task_hypergradient, phi, batch, self.config["batching"])
