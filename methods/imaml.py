"""iMAML — implicit MAML (Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019, "Meta-Learning
with Implicit Gradients"), for meta-initialisation problems.

Each task solves a proximally regularised inner problem around the meta-parameters φ:
    θ*_b(φ) = argmin_θ  f(θ; S_b) + λ/2 ‖θ − φ‖²                          (Eq. 4)
approximately, by T gradient steps of size α from θ = φ. By the implicit function theorem
    dθ*/dφ = (I + ∇²_θ f(θ*)/λ)⁻¹                                        (Lemma 1)
so the task's meta-gradient is
    g_b = (I + H_b/λ)⁻¹ ∇_θ F(θ*_b; Q_b),    H_b = ∇²_θ f(θ*_b; S_b)
computed with Q steps of conjugate gradient using only Hessian-vector products (Alg. 2).
The code applies the common implicit assembly to the proximal inner loss
g(θ, φ) = f(θ) + λ/2‖θ − φ‖², whose Hessian is H + λI and whose mixed derivative is −λI:
    dF/dφ = ∂F/∂φ + λ v,   (H + λI) v = ∇_θ F    by CG;
CG on (H + λI) and on (I + H/λ) produce the same iterates up to the factor λ, so this is
the paper's update. Where H + λI is not positive definite along a CG direction (a
nonconvex inner loss far from its minimum, e.g. a ReLU net at φ after one step), CG stops
at that direction instead of dividing by a negative curvature. Defaults: λ = 2, 5 CG
steps (the paper's few-shot settings); the inner steps and step size are the task's. The
implicit assembly, the solve and the meta-batch are implicit-cg's (methods/implicit_cg.py):
iMAML is that method with the proximal inner problem and its own CG system.

Two settings of the paper's code (aravindr93/imaml_dev) for its few-shot runs:
- `cg_damping` δ: CG solves (I + H/(λ + δ)) g = ∇_θ F, i.e. (H + (λ + δ)I) v = ∇_θ F
  with g = (λ + δ) v: a Tikhonov term that keeps the system positive definite where H
  has negative curvature. δ = 0 is the paper's equation.
- `test_proximal`: whether test-time adaptation keeps the proximal term (λ); the paper's
  Omniglot evaluation drops it (λ = 0: plain gradient descent from φ).
"""

from dataclasses import dataclass

from benchsuite.core.contract import META_INIT
from benchsuite.core.functional import conjugate_gradient, gradient_descent, tree_add
from benchsuite.core.settings import Annotated, AtLeast, Positive
from benchsuite.methods.implicit_cg import ImplicitCG


class ProximalProblem:
    """The inner problem of Eq. 4 for a task: g(θ, φ; x, y) = f(θ, φ; x, y) + λ/2 ‖θ − φ‖²
    (the task's inner loss with a proximal term around φ)."""

    def __init__(self, task, lam: float):
        self.task = task
        self.lam = lam

    def inner_loss(self, theta, phi, x, y):
        distance = sum(((theta[k] - phi[k]) ** 2).sum() for k in theta)
        return self.task.inner_loss(theta, phi, x, y) + 0.5 * self.lam * distance


class IMAML(ImplicitCG):
    name = "imaml"
    paper = "Rajeswaran et al. 2019 (iMAML)"
    supports = frozenset({META_INIT})

    @dataclass(frozen=True)
    class Settings:
        proximal_lambda: Annotated[float, Positive] = 2.0
        """λ, the weight of the proximal term λ/2 ‖θ − φ‖² (Eq. 4)."""
        cg_steps: Annotated[int, AtLeast(1)] = 5
        """Q, the conjugate-gradient steps of Algorithm 2."""
        cg_damping: Annotated[float, AtLeast(0)] = 0.0
        """δ: CG solves (I + H/(λ + δ)) g = ∇_θ F; 0 is the paper's equation."""
        test_proximal: bool = True
        """Whether test-time adaptation keeps the proximal term (false: plain gradient
        descent from φ, as the paper's Omniglot evaluation)."""

    def inner_problem(self, task):
        return ProximalProblem(task, self.config["proximal_lambda"])

    def inner_solution(self, task, phi, support_x, support_y):
        """T gradient steps of size α on the proximal inner problem, from θ₀(φ)."""
        return gradient_descent(self.inner_problem(task), task.initial_theta(phi), phi,
                                support_x, support_y, self.config["inner_steps"],
                                self.config["inner_lr"])

    def adapt(self, task, phi, support_x, support_y, steps):
        problem = self.inner_problem(task) if self.config["test_proximal"] else task
        return gradient_descent(problem, task.initial_theta(phi), phi, support_x, support_y,
                                steps, self.config["inner_lr"])

    def solve(self, apply_hessian, rhs):
        lam, damping = self.config["proximal_lambda"], self.config["cg_damping"]
        if damping == 0:
            return conjugate_gradient(apply_hessian, rhs, self.config["cg_steps"])
        v = conjugate_gradient(lambda u: tree_add(apply_hessian(u), u, damping), rhs,
                               self.config["cg_steps"])
        # the assembly multiplies by λ (the proximal loss's mixed derivative); the damped
        # system's hypergradient is (λ + δ) v
        return {k: (lam + damping) / lam * x for k, x in v.items()}
