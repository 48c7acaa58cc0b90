"""WarpGrad — Warped Gradient Descent (Flennerhag, Rusu, Pascanu, Visin, Yin & Hadsell,
ICLR 2020, "Meta-Learning with Warped Gradient Descent"), as Warp-MAML.

Warp layers ω_l, shared by all tasks and never adapted, are interleaved with the task
layers: layer l computes h_l = σ(ω_l(W_l h_l−1 + b_l)). Back-propagating through ω makes
plain gradient descent on θ a preconditioned descent:
    θ_k+1 = θ_k − α ∇_θ f(θ_k; ω, S)
Here the warp layers are linear maps of the layer's output units, Ω_l, initialised to the
identity (the simplest warp layer; the paper also uses deeper, non-linear ones).

Warp parameters follow the WarpGrad objective (the paper's Algorithm 2): the
points θ_b,k of each task's adaptation trajectory are held fixed, and ω is scored on one
warped step from each of them, so no gradient flows through the trajectory:
    L_warp(ω) = 1/B Σ_b 1/K Σ_k F(θ̄_b,k − α ∇_θ f(θ̄_b,k; ω, S_b); ω, Q_b),   θ̄ = stop-grad θ
The initialisation θ₀ = φ is meta-learned with the MAML objective through the warped inner
loop, warps held fixed (the paper's Warp-MAML):
    L_init(φ) = 1/B Σ_b F(θ_b,K(φ); ω̄, Q_b)
One meta-step returns ∇_ω L_warp and ∇_φ L_init; the reported outer loss is L_init.
"""

from benchsuite.blocks.layer_transforms import LayerTransformMethod
from benchsuite.core.contract import task_part
from benchsuite.core.functional import (
    gradient_step,
    inner_gradient,
    mean_surrogate_gradient,
    tree_detach,
)


class WarpGrad(LayerTransformMethod):
    name = "warpgrad"
    paper = "Flennerhag et al. 2020 (WarpGrad), Warp-MAML"
    transform_group = "warp"  # Ω

    def meta_gradient(self, task, phi, batch):
        alpha, steps = self.config["inner_lr"], self.config["inner_steps"]

        def task_objectives(phi, support_x, support_y, query_x, query_y):
            task_phi = task_part(phi)
            warped = self.transformed(task, phi)
            warps_fixed = self.transformed(task, tree_detach(phi))
            phi_fixed = tree_detach(task_phi)
            theta = task.initial_theta(task_phi)
            warp_terms = []
            for _ in range(steps):
                point = tree_detach(theta)  # a trajectory point, a constant for ω
                step = gradient_step(point, inner_gradient(warped, point, phi_fixed, support_x,
                                                           support_y), alpha)
                warp_terms.append(warped.outer_loss(step, phi_fixed, query_x, query_y))
                theta = gradient_step(theta, inner_gradient(warps_fixed, theta, task_phi,
                                                            support_x, support_y), alpha)
            init_objective = warps_fixed.outer_loss(theta, task_phi, query_x, query_y)
            warp_objective = sum(warp_terms) / max(steps, 1)
            return init_objective + warp_objective, init_objective

        return mean_surrogate_gradient(task_objectives, phi, batch, self.config["batching"])
