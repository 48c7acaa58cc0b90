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
steps (the paper's few-shot settings); the inner steps and step size are the task's.

Two settings of the paper's code (aravindr93/imaml_dev) for its few-shot runs:
- `cg_damping` δ: CG solves (I + H/(λ + δ)) g = ∇_θ F, i.e. (H + (λ + δ)I) v = ∇_θ F
  with g = (λ + δ) v: a Tikhonov term that keeps the system positive definite where H
  has negative curvature. δ = 0 is the paper's equation.
- `test_proximal`: whether test-time adaptation keeps the proximal term (λ); the paper's
  Omniglot evaluation drops it (λ = 0: plain gradient descent from φ).
"""

from torch.func import grad

from benchsuite.contract import META_INIT, Method
from benchsuite.functional import (
    conjugate_gradient,
    gradient_step,
    implicit_hypergradient,
    mean_task_hypergradient,
    tree_add,
)


def proximal_inner_loss(task, x, y, lam):
    """(θ, φ) ↦ f(θ, φ; x, y) + λ/2 ‖θ − φ‖², the inner problem of Eq. 4."""
    def loss(theta, phi):
        distance = sum(((theta[k] - phi[k]) ** 2).sum() for k in theta)
        return task.inner_loss(theta, phi, x, y) + 0.5 * lam * distance

    return loss


class IMAML(Method):
    name = "imaml"
    paper = "Rajeswaran et al. 2019 (iMAML)"
    supports = frozenset({META_INIT})
    hyperparameters = {"proximal_lambda": 2.0, "cg_steps": 5, "cg_damping": 0.0,
                       "test_proximal": True}
    accuracy_knob = "cg_steps"

    @classmethod
    def config_problems(cls, config):
        if not config["proximal_lambda"] > 0 or config["cg_damping"] < 0:
            return ["imaml needs proximal_lambda > 0 and cg_damping >= 0"]
        return []

    def inner_solution(self, task, phi, support_x, support_y, steps, lam):
        """T gradient steps of size α on the proximal inner loss with weight `lam`."""
        inner_loss = proximal_inner_loss(task, support_x, support_y, lam)
        theta = task.initial_theta(phi)
        for _ in range(steps):
            theta = gradient_step(theta, grad(inner_loss)(theta, phi), self.config["inner_lr"])
        return theta

    def adapt(self, task, phi, support_x, support_y, steps):
        lam = self.config["proximal_lambda"] if self.config["test_proximal"] else 0.0
        return self.inner_solution(task, phi, support_x, support_y, steps, lam)

    def solve(self, apply_hessian, rhs):
        lam, damping = self.config["proximal_lambda"], self.config["cg_damping"]
        if damping == 0:
            return conjugate_gradient(apply_hessian, rhs, self.config["cg_steps"])
        v = conjugate_gradient(lambda u: tree_add(apply_hessian(u), u, damping), rhs,
                               self.config["cg_steps"])
        # the assembly multiplies by λ (the proximal loss's mixed derivative); the damped
        # system's hypergradient is (λ + δ) v
        return {k: (lam + damping) / lam * x for k, x in v.items()}

    def meta_gradient(self, task, phi, batch):
        lam = self.config["proximal_lambda"]

        def task_hypergradient(phi, support_x, support_y, query_x, query_y):
            theta = self.inner_solution(task, phi, support_x, support_y,
                                        self.config["inner_steps"], lam)
            return implicit_hypergradient(
                proximal_inner_loss(task, support_x, support_y, lam),
                lambda theta, phi: task.outer_loss(theta, phi, query_x, query_y),
                theta, phi, self.solve)

        return mean_task_hypergradient(task_hypergradient, phi, batch, self.config["batching"])
