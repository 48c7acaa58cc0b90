"""Functional building blocks shared by the hypergradient methods.

Parameters are dicts of tensors. Everything here is written with `torch.func` so that a
method can compose it freely: an inner loop inside `grad` gives second-order terms, the
same loop inside `vmap` processes a whole meta-batch at once. Nothing here knows a method
or a task by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from torch.func import grad, jvp, vmap
from torch.utils._pytree import tree_map

from benchsuite.core.execution import TASKS_LOOPED, TASKS_VMAPPED, plain_autograd, running_tasks
from benchsuite.core.structures import EpisodeBatch, MetaGradient, Params

StepSize = float | Mapping[str, torch.Tensor]


class InnerProblem(Protocol):
    """What an inner loop needs of a task: its inner loss f(θ, φ; x, y) (a Task, or a task
    seen through per-layer transforms, benchsuite.blocks.layer_transforms)."""

    def inner_loss(self, theta: Params, phi: Params, x: torch.Tensor,
                   y: torch.Tensor) -> torch.Tensor: ...


# -- dict-of-tensor arithmetic ------------------------------------------------------------
def tree_add(a: Params, b: Params, scale: float | torch.Tensor = 1.0) -> Params:
    return {k: a[k] + scale * b[k] for k in a}


def tree_dot(a: Params, b: Params) -> torch.Tensor:
    return sum((a[k] * b[k]).sum() for k in a)  # type: ignore[return-value]  # params: non-empty


def tree_detach(a: Params) -> Params:
    return {k: v.detach() for k, v in a.items()}


def flatten(a: Params) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in a.values()])


# -- inner loops ------------------------------------------------------------------------------
def gradient_step(theta: Params, gradient: Params, step_size: StepSize) -> Params:
    """θ − α ⊙ g, with α a scalar or a dict of per-parameter step sizes (Meta-SGD)."""
    if isinstance(step_size, Mapping):
        return {k: theta[k] - step_size[k] * gradient[k] if k in gradient else theta[k]
                for k in theta}
    return {k: theta[k] - step_size * gradient[k] if k in gradient else theta[k] for k in theta}


def inner_gradient(task: InnerProblem, theta: Params, phi: Params, x, y,
                   keys: tuple[str, ...] | None = None, create_graph: bool = True) -> Params:
    """∇_θ f(θ, φ; x, y), restricted to `keys` when given (the rest of θ held fixed).

    Inside a looped meta-gradient (benchsuite.core.execution.plain_autograd) it is taken with
    torch.autograd.grad, recording its own graph only if `create_graph`; elsewhere with
    torch.func.grad, which composes with vmap and with an outer torch.func.grad."""
    keys = tuple(theta) if keys is None else keys
    frozen = {k: v for k, v in theta.items() if k not in keys}

    def loss_of_adapted(adapted):
        return task.inner_loss({**frozen, **adapted}, phi, x, y)

    adapted = {k: theta[k] for k in keys}
    if not plain_autograd():
        return grad(loss_of_adapted)(adapted)
    # a θ that does not depend on φ (a zero head) becomes a leaf to differentiate at
    adapted = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in
               adapted.items()}
    gradients = torch.autograd.grad(loss_of_adapted(adapted), list(adapted.values()),
                                    create_graph=create_graph, materialize_grads=True)
    return dict(zip(adapted, gradients))


def gradient_descent(task: InnerProblem, theta: Params, phi: Params, x, y, steps: int,
                     step_size: StepSize, first_order: bool = False,
                     keys: tuple[str, ...] | None = None) -> Params:
    """`steps` steps of θ ← θ − α ∇_θ f(θ, φ). Differentiable through every step unless
    `first_order`, which treats each inner gradient as a constant."""
    for _ in range(steps):
        g = inner_gradient(task, theta, phi, x, y, keys, create_graph=not first_order)
        if first_order:
            g = tree_detach(g)
        theta = gradient_step(theta, g, step_size)
    return theta


# -- meta-batches ---------------------------------------------------------------------------
def over_tasks(per_task: Callable, batching: str, randomness: str = "error") -> Callable:
    """Lift `per_task(phi, support_x, support_y, query_x, query_y)` to a meta-batch.

    "vmap" processes the tasks together with torch.func.vmap; "loop" runs them one by one
    and stacks the results (faster for large convolutions on CPU; the graphs of the tasks
    stay alive together either way: the engine bounds memory by handing a method chunks of
    the meta-batch, benchsuite.core.execution). A `per_task` that draws random numbers needs
    randomness="different" (one draw per task) under vmap.
    """
    if batching == "vmap":
        vmapped = vmap(per_task, in_dims=(None, 0, 0, 0, 0), randomness=randomness)

        def marked(*args):
            with running_tasks(TASKS_VMAPPED):
                return vmapped(*args)
        return marked
    if batching == "loop":
        def looped(phi, sx, sy, qx, qy):
            outs = [per_task(phi, sx[t], sy[t], qx[t], qy[t]) for t in range(sx.shape[0])]
            return tree_map(lambda *per_task_values: torch.stack(per_task_values), *outs)
        return looped
    raise ValueError(f"unknown batching {batching!r}: use 'vmap' or 'loop'")


def mean_objective_gradient(per_task_objective: Callable, phi: Params, batch: EpisodeBatch,
                            batching: str, randomness: str = "error") -> MetaGradient:
    """∇_φ of the meta-batch mean of `per_task_objective(phi, sx, sy, qx, qy)`."""
    def objective_twice(*args):
        value = per_task_objective(*args)
        return value, value

    return mean_surrogate_gradient(objective_twice, phi, batch, batching, randomness)


def mean_surrogate_gradient(per_task: Callable, phi: Params, batch: EpisodeBatch,
                            batching: str, randomness: str = "error") -> MetaGradient:
    """∇_φ of the meta-batch mean of a surrogate objective, for methods whose meta-objective
    is not the outer loss itself: `per_task(phi, sx, sy, qx, qy)` returns (surrogate, outer
    loss); the gradient follows the surrogate and the reported loss is the outer loss."""
    def meta_objective(phi):
        surrogate, outer = over_tasks(per_task, batching, randomness)(phi, *batch.tensors())
        return surrogate.mean(), outer.mean()

    if batching == "vmap":
        grads, outer_loss = grad(meta_objective, has_aux=True)(phi)
        return MetaGradient(grads=grads, outer_loss=outer_loss)
    # tasks one by one: plain autograd, which dispatches each op once instead of through
    # two torch.func transform levels (the faster path for convolutions on CPU)
    leaves = {k: v.detach().requires_grad_() for k, v in phi.items()}
    with torch.enable_grad(), running_tasks(TASKS_LOOPED):
        surrogate, outer_loss = meta_objective(leaves)
        gradients = torch.autograd.grad(surrogate, list(leaves.values()),
                                        materialize_grads=True)
    return MetaGradient(grads=dict(zip(leaves, gradients)), outer_loss=outer_loss.detach())


# -- implicit differentiation pieces ------------------------------------------------------------
def hessian_vector_product(loss_of_theta: Callable[[Params], torch.Tensor], theta: Params,
                           vector: Params) -> Params:
    """H v with H = ∇²_θ loss(θ), by forward-over-reverse differentiation."""
    return jvp(grad(loss_of_theta), (theta,), (vector,))[1]


def conjugate_gradient(apply_matrix: Callable[[Params], Params], rhs: Params,
                       iterations: int) -> Params:
    """Approximately solve M x = rhs for symmetric positive definite M, from x₀ = 0.

    Where M is not positive definite along a search direction (the Hessian of a nonconvex
    inner problem), a CG step would divide by a non-positive curvature and blow up; the
    iteration stops there and keeps its last iterate, as truncated CG does (Steihaug
    1983). The test is a tensor condition, so it holds per task under vmap."""
    x = {k: torch.zeros_like(v) for k, v in rhs.items()}
    residual = dict(rhs)
    direction = dict(rhs)
    residual_sq = tree_dot(residual, residual)
    active = torch.ones_like(residual_sq, dtype=torch.bool)
    for _ in range(iterations):
        m_direction = apply_matrix(direction)
        curvature = tree_dot(direction, m_direction)
        active = active & (curvature > 0)
        alpha = torch.where(active, residual_sq / torch.where(active, curvature, 1.0), 0.0)
        x = tree_add(x, direction, alpha)
        residual = tree_add(residual, m_direction, -alpha)
        new_residual_sq = tree_dot(residual, residual)
        direction = tree_add(residual, direction, new_residual_sq / residual_sq.clamp_min(1e-30))
        residual_sq = new_residual_sq
    return x


def neumann_series(apply_matrix: Callable[[Params], Params], rhs: Params, terms: int,
                   step: float) -> Params:
    """M⁻¹ rhs ≈ α Σ_{j<terms} (I − αM)ʲ rhs, the truncated Neumann series of Lorraine et
    al. 2020 (Algorithm 3); it converges when 0 < α < 2/λ_max(M)."""
    power = dict(rhs)
    total = tree_add({k: torch.zeros_like(v) for k, v in rhs.items()}, power, step)
    for _ in range(terms - 1):
        power = tree_add(power, apply_matrix(power), -step)
        total = tree_add(total, power, step)
    return total


def fixed_point_iteration(affine_map: Callable[[Params], Params], start: Params,
                          iterations: int) -> Params:
    """`iterations` steps of v ← T(v) from `start`; converges to the fixed point of T when
    T is a contraction."""
    v = start
    for _ in range(iterations):
        v = affine_map(v)
    return v


LinearSolver = Callable[[Callable[[Params], Params], Params], Params]


def implicit_hypergradient(inner_loss: Callable, outer_loss: Callable, theta_star: Params,
                           phi: Params, solve: LinearSolver) -> tuple[Params, torch.Tensor]:
    """dF/dφ at an inner solution θ* by the implicit function theorem (∇_θ f(θ*, φ) = 0):

        v     ≈ (∂²f/∂θ²)⁻¹ ∂F/∂θ          by `solve(apply_hessian, ∂F/∂θ)`
        dF/dφ = ∂F/∂φ − (∂²f/∂φ∂θ)ᵀ v

    `inner_loss(θ, φ)` and `outer_loss(θ, φ)` are one task's f and F with its data bound.
    θ* is treated as a constant: how it was reached does not enter. Returns the
    hypergradient and F(θ*, φ)."""
    theta_star = tree_detach(theta_star)

    def outer_and_value(theta, phi):
        value = outer_loss(theta, phi)
        return value, value

    (outer_grad_theta, outer_grad_phi), outer_value = grad(
        outer_and_value, argnums=(0, 1), has_aux=True)(theta_star, phi)
    v = solve(lambda u: hessian_vector_product(lambda t: inner_loss(t, phi), theta_star, u),
              outer_grad_theta)

    def inner_gradient_along_v(phi):
        return tree_dot(grad(inner_loss)(theta_star, phi), v)

    mixed = grad(inner_gradient_along_v)(phi)  # (∂²f/∂φ∂θ)ᵀ v
    return tree_add(outer_grad_phi, mixed, -1.0), outer_value


def mean_task_hypergradient(per_task: Callable, phi: Params, batch: EpisodeBatch,
                            batching: str) -> MetaGradient:
    """Meta-batch mean of `per_task(phi, sx, sy, qx, qy) -> (hypergradient, outer loss)`,
    for methods that assemble each task's hypergradient instead of differentiating a
    meta-objective."""
    grads, losses = over_tasks(per_task, batching)(phi, *batch.tensors())
    return MetaGradient(grads={k: g.mean(0) for k, g in grads.items()},
                        outer_loss=losses.mean().detach())
