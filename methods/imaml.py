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
"""

from torch.func import grad

from benchsuite.contract import META_INIT, Method
from benchsuite.functional import (
    conjugate_gradient,
    gradient_step,
    implicit_hypergradient,
    mean_task_hypergradient,
)


class IMAML(Method):
    name = "imaml"
    paper = "Rajeswaran et al. 2019 (iMAML)"
    supports = frozenset({META_INIT})
    hyperparameters = {"proximal_lambda": 2.0, "cg_steps": 5}
    accuracy_knob = "cg_steps"

    def proximal_inner_loss(self, task, x, y):
        lam = self.config["proximal_lambda"]

        def loss(theta, phi):
            distance = sum(((theta[k] - phi[k]) ** 2).sum() for k in theta)
            return task.inner_loss(theta, phi, x, y) + 0.5 * lam * distance

        return loss

    def adapt(self, task, phi, support_x, support_y, steps):
        inner_loss = self.proximal_inner_loss(task, support_x, support_y)
        theta = task.initial_theta(phi)
        for _ in range(steps):
            theta = gradient_step(theta, grad(inner_loss)(theta, phi), self.config["inner_lr"])
        return theta

    def solve(self, apply_hessian, rhs):
        return conjugate_gradient(apply_hessian, rhs, self.config["cg_steps"])

    def meta_gradient(self, task, phi, batch):
        def task_hypergradient(phi, support_x, support_y, query_x, query_y):
            theta = self.adapt(task, phi, support_x, support_y, self.config["inner_steps"])
            return implicit_hypergradient(
                self.proximal_inner_loss(task, support_x, support_y),
                lambda theta, phi: task.outer_loss(theta, phi, query_x, query_y),
                theta, phi, self.solve)

        return mean_task_hypergradient(task_hypergradient, phi, batch, self.config["batching"])
