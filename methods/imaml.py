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

The paper's code (aravindr93/imaml_dev, examples/omniglot_implicit_maml.py) runs its
Omniglot experiments differently from the equations, and four settings follow it:
- `inner_proximal`: the inner loop descends on g (Eq. 4; true) or on f alone (false: the
  code's `learn_task` without `add_regularization`, line 107);
- `pull_back`: after the inner steps, one gradient step on λ/2 ‖θ − φ‖² alone,
  θ ← θ − αλ(θ − φ) (lines 108-112), the only place the code's λ enters θ*;
- `cg_regularization` ρ and `cg_damping` δ: CG solves ((1 + ρ)I + H/(λ + δ)) g = ∇_θ F
  (implicit_maml/learner_model.py:152, `regu_coef` and `lam_damping`), i.e.
  (H + (1 + ρ)(λ + δ)I) v = ∇_θ F with g = (λ + δ) v; ρ = δ = 0 is the paper's equation.
  The script passes its `--cg_damping` as ρ and leaves δ at its default 10 (line 124).
`test_proximal` says whether test-time adaptation keeps the proximal term; the paper's
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
        """δ: CG solves ((1 + ρ)I + H/(λ + δ)) g = ∇_θ F (imaml_dev's `lam_damping`); 0
        is the paper's equation."""
        cg_regularization: Annotated[float, AtLeast(0)] = 0.0
        """ρ, the identity's extra weight in the same system (imaml_dev's `regu_coef`);
        0 is the paper's equation."""
        inner_proximal: bool = True
        """Whether the inner loop descends on the proximal problem (Eq. 4; false: on the
        task's loss f alone, as imaml_dev's Omniglot script)."""
        pull_back: bool = False
        """Whether one step θ ← θ − αλ(θ − φ) follows the inner loop of training
        (imaml_dev's pull-back toward φ)."""
        test_proximal: bool = True
        """Whether test-time adaptation keeps the proximal term (false: plain gradient
        descent from φ, as the paper's Omniglot evaluation)."""

    def inner_problem(self, task):
        return ProximalProblem(task, self.config["proximal_lambda"])

    def inner_solution(self, task, phi, support_x, support_y):
        """T gradient steps of size α from θ₀(φ) on the proximal inner problem (or on f),
        then the pull-back step if asked."""
        alpha, lam = self.config["inner_lr"], self.config["proximal_lambda"]
        problem = self.inner_problem(task) if self.config["inner_proximal"] else task
        theta = gradient_descent(problem, task.initial_theta(phi), phi, support_x, support_y,
                                 self.config["inner_steps"], alpha)
        if self.config["pull_back"]:
            theta = {k: theta[k] - alpha * lam * (theta[k] - phi[k]) for k in theta}
        return theta

    def adapt(self, task, phi, support_x, support_y, steps):
        problem = self.inner_problem(task) if self.config["test_proximal"] else task
        return gradient_descent(problem, task.initial_theta(phi), phi, support_x, support_y,
                                steps, self.config["inner_lr"])

    def solve(self, apply_hessian, rhs):
        """v with (H + (1 + ρ)(λ + δ)I) v = ∇_θ F by CG, where `apply_hessian` gives
        (H + λI) u, scaled so that the assembly's λ v is the hypergradient (λ + δ) v."""
        lam, damping = self.config["proximal_lambda"], self.config["cg_damping"]
        shift = (1 + self.config["cg_regularization"]) * (lam + damping) - lam
        v = conjugate_gradient(lambda u: tree_add(apply_hessian(u), u, shift), rhs,
                               self.config["cg_steps"])
        return {k: (lam + damping) / lam * x for k, x in v.items()}
