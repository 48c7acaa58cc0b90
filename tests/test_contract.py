"""What the contract and its shared pieces give a method: the default `adapt` is MAML's
inner loop, iMAML is implicit-CG with the proximal inner problem, MT-net and WarpGrad
share one per-layer transform holder, and the execution marks nest."""

import torch
from torch.func import grad

from benchsuite.blocks.layer_transforms import LayerTransformMethod
from benchsuite.core.execution import (
    TASKS_LOOPED,
    TASKS_VMAPPED,
    plain_autograd,
    running_tasks,
    under_task_vmap,
)
from benchsuite.core.seeding import generator
from benchsuite.running.config import resolve
from benchsuite.running.trial import set_up


def built(registry, method, task="sinusoid", **overrides):
    task_cls, method_cls = registry.task(task).cls, registry.method(method).cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu", options={},
                     overrides=[])
    config.update(overrides)
    return set_up(method_cls, task_cls, config, init=generator("contract-test"))


def one_episode(setup):
    batch = setup.episodes("train", 1, generator("contract-episode"))
    return batch.support_x[0], batch.support_y[0]


def test_default_adapt_is_gradient_descent_from_theta0(registry):
    setup = built(registry, "maml", inner_lr=0.05)
    task, phi = setup.task, setup.phi
    x, y = one_episode(setup)
    theta = task.initial_theta(phi)
    for _ in range(3):  # θ ← θ − α ∇_θ f(θ, φ)
        g = grad(task.inner_loss)(theta, phi, x, y)
        theta = {k: theta[k] - 0.05 * g[k] for k in theta}
    adapted = setup.method.adapt(task, phi, x, y, 3)
    for key in theta:
        torch.testing.assert_close(adapted[key], theta[key])
    assert "adapt" not in vars(registry.method("maml").cls)  # the contract's own


def test_imaml_adapts_on_the_proximal_problem_of_implicit_cg(registry):
    imaml = registry.method("imaml").cls
    assert imaml.__mro__[1].name == "implicit-cg" and "meta_gradient" not in vars(imaml)
    lam, alpha = 3.0, 0.02
    setup = built(registry, "imaml", proximal_lambda=lam, inner_lr=alpha, test_proximal=True)
    task, phi = setup.task, setup.phi
    x, y = one_episode(setup)
    theta = task.initial_theta(phi)
    for _ in range(2):  # ∇_θ [f + λ/2 ‖θ − φ‖²] = ∇f + λ (θ − φ)
        g = grad(task.inner_loss)(theta, phi, x, y)
        theta = {k: theta[k] - alpha * (g[k] + lam * (theta[k] - phi[k])) for k in theta}
    adapted = setup.method.adapt(task, phi, x, y, 2)
    for key in theta:
        torch.testing.assert_close(adapted[key], theta[key])


def test_identity_transforms_leave_the_model_unchanged(registry):
    for method in ("mtnet", "warpgrad"):
        assert issubclass(registry.method(method).cls, LayerTransformMethod)
        setup = built(registry, method)
        task, phi = setup.task, setup.phi
        x, y = one_episode(setup)
        plain = {k: v for k, v in phi.items() if ":" not in k}
        transformed = setup.method.transformed(task, phi)
        torch.testing.assert_close(transformed.inner_loss(task.initial_theta(plain), plain, x, y),
                                   task.inner_loss(task.initial_theta(plain), plain, x, y))


def test_execution_marks_nest():
    assert not under_task_vmap() and not plain_autograd()
    with running_tasks(TASKS_LOOPED):
        assert plain_autograd() and not under_task_vmap()
        with torch.no_grad():
            assert not plain_autograd()  # nothing recorded: nothing to take autograd of
        with running_tasks(TASKS_VMAPPED):
            assert under_task_vmap() and not plain_autograd()
    with running_tasks(TASKS_VMAPPED), running_tasks(TASKS_LOOPED):
        assert under_task_vmap() and not plain_autograd()  # still inside the vmap
    assert not under_task_vmap() and not plain_autograd()
