"""Meta-SGD, ANIL, MT-net and WarpGrad against second implementations: the
learn2learn algorithms on an nn.Module with the same weights, explicit torch.autograd loops
over the tasks, and central finite differences of the meta-objective. All in float64."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchsuite.blocks.models import mlp_forward
from benchsuite.core.contract import META_INIT, Task, owned_part, task_part
from benchsuite.core.functional import flatten
from benchsuite.methods.anil import ANIL
from benchsuite.methods.maml import MAML
from benchsuite.methods.metasgd import MetaSGD
from benchsuite.methods.mtnet import MTNet, straight_through_mask
from benchsuite.methods.warpgrad import WarpGrad
from benchsuite.running.trial import run_trial
from benchsuite.tasks.sinusoid import Sinusoid
from tests.conftest import small_config


def setup(method_cls, seed=0, **overrides):
    """Method, sinusoid task, float64 φ₀ and a float64 training meta-batch."""
    settings = {"inner_steps": 2, "inner_lr": 0.05, "meta_batch": 3, "hidden": 6,
                "batching": "vmap", **overrides}
    config = small_config(Sinusoid, method_cls, **settings)
    task, method = Sinusoid(config, torch.device("cpu")), method_cls(config)
    phi = method.init_meta_params(task, torch.Generator().manual_seed(seed))
    phi = {k: v.double() for k, v in phi.items()}
    batch = task.sample_batch("train", config["meta_batch"], torch.Generator().manual_seed(7))
    batch = type(batch)(*(t.double() for t in batch.tensors()))
    return method, task, phi, batch


def relative_difference(estimate: dict, reference: dict) -> float:
    keys = list(reference)
    a = flatten({k: estimate[k] for k in keys})
    b = flatten({k: reference[k] for k in keys})
    return float((a - b).norm() / b.norm())


def mse(prediction, target):
    return ((prediction - target) ** 2).mean()


def tasks_of(batch):
    return [tuple(t[i] for t in batch.tensors()) for i in range(len(batch))]


# -- learn2learn references ----------------------------------------------------------------
def module_with(phi):
    """nn.Sequential MLP holding the functional MLP's weights; the map from its parameter
    names to ours."""
    hidden = phi["layers.0.weight"].shape[0]
    model = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                          nn.ReLU(), nn.Linear(hidden, 1)).double()
    names = {f"{2 * i}.{kind}": f"layers.{i}.{kind}" for i in range(3)
             for kind in ("weight", "bias")}
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(phi[names[name]])
    return model, names


def learn2learn_meta_gradient(wrapper, batch, steps):
    """The mean query loss after `steps` adaptation steps per task, back-propagated through
    learn2learn's clone/adapt."""
    total = 0.0
    for sx, sy, qx, qy in tasks_of(batch):
        learner = wrapper.clone()
        for _ in range(steps):
            learner.adapt(F.mse_loss(learner(sx), sy))
        total = total + F.mse_loss(learner(qx), qy)
    (total / len(batch)).backward()


def test_metasgd_matches_learn2learn():
    learn2learn = pytest.importorskip("learn2learn")
    method, task, phi, batch = setup(MetaSGD)
    ours = method.meta_gradient(task, phi, batch).grads
    model, names = module_with(phi)
    wrapper = learn2learn.algorithms.MetaSGD(model, lr=1.0, first_order=False)
    alpha = owned_part(phi, "alpha")
    with torch.no_grad():
        for (name, _), rate in zip(model.named_parameters(), wrapper.lrs, strict=True):
            rate.copy_(alpha[names[name]])  # the paper's random α, not learn2learn's constant
    learn2learn_meta_gradient(wrapper, batch, method.config["inner_steps"])
    reference = {names[n]: p.grad for n, p in model.named_parameters()}
    reference.update({f"alpha:{names[n]}": rate.grad for (n, _), rate
                      in zip(model.named_parameters(), wrapper.lrs, strict=True)})
    assert set(ours) == set(reference)
    assert relative_difference(ours, reference) <= 1e-5


def test_metasgd_step_sizes_start_in_the_papers_range_beside_the_shared_initialisation():
    method, task, _, _ = setup(MetaSGD)
    phi = method.init_meta_params(task, torch.Generator().manual_seed(3))
    alpha = owned_part(phi, "alpha")
    task_phi = task.init_meta_params(torch.Generator().manual_seed(3))
    assert task_part(phi).keys() == task_phi.keys()
    assert all(torch.equal(task_part(phi)[k], task_phi[k]) for k in task_phi)
    values = flatten(alpha)
    assert alpha.keys() == task_phi.keys()
    assert 0.005 <= values.min() and values.max() <= 0.1 and values.std() > 0.01


# -- ANIL against an explicit autograd loop -----------------------------------------------------
def test_anil_equals_maml_restricted_to_the_head():
    method, task, phi, batch = setup(ANIL)
    ours = method.meta_gradient(task, phi, batch).grads
    leaves = {k: v.clone().requires_grad_() for k, v in phi.items()}
    alpha, head = method.config["inner_lr"], task.head_keys
    total = 0.0
    for sx, sy, qx, qy in tasks_of(batch):
        theta = dict(leaves)
        for _ in range(method.config["inner_steps"]):
            loss = mse(mlp_forward(theta, sx), sy)
            grads = torch.autograd.grad(loss, [theta[k] for k in head], create_graph=True)
            theta.update({k: theta[k] - alpha * g for k, g in zip(head, grads, strict=True)})
        total = total + mse(mlp_forward(theta, qx), qy)
    reference = dict(zip(leaves, torch.autograd.grad(total / len(batch), list(leaves.values())),
                         strict=True))
    assert relative_difference(ours, reference) <= 1e-10
    body = [k for k in phi if k not in head]
    assert flatten({k: ours[k] for k in body}).norm() > 0

    sx, sy, _, _ = tasks_of(batch)[0]
    adapted = method.adapt(task, phi, sx, sy, 3)
    assert all(torch.equal(adapted[k], phi[k]) for k in body)
    assert not torch.equal(adapted[head[0]], phi[head[0]])


# -- finite differences of the unrolled objectives ----------------------------------------------
def central_differences(objective, phi, eps=1e-6):
    gradient = {}
    for key, value in phi.items():
        flat = torch.zeros(value.numel(), dtype=value.dtype)
        for i in range(value.numel()):
            shift = torch.zeros_like(flat)
            shift[i] = eps
            shift = shift.reshape(value.shape)
            plus = objective({**phi, key: value + shift})
            minus = objective({**phi, key: value - shift})
            flat[i] = (plus - minus) / (2 * eps)
        gradient[key] = flat.reshape(value.shape)
    return gradient


@pytest.mark.parametrize("method_cls", [MetaSGD, ANIL])
def test_meta_gradient_matches_finite_differences(method_cls):
    method, task, phi, batch = setup(method_cls, hidden=3)
    exact = method.meta_gradient(task, phi, batch).grads
    numeric = central_differences(
        lambda p: method.meta_gradient(task, p, batch).outer_loss, phi)
    assert exact.keys() == numeric.keys()
    assert relative_difference(exact, numeric) <= 1e-6


# -- MT-net --------------------------------------------------------------------------------
def mtnet_forward(theta, transforms, x):
    """h_l = σ(T_l (W_l h + b_l)), written with matrices (T applied as h Tᵀ)."""
    for layer in range(3):
        x = (x @ theta[f"layers.{layer}.weight"].T + theta[f"layers.{layer}.bias"])
        x = x @ transforms[str(layer)].T
        if layer < 2:
            x = torch.relu(x)
    return x


def perturbed(method_cls, **overrides):
    """φ with transforms / warps moved away from the identity and varied mask logits, so the
    test covers their gradients away from the starting point."""
    method, task, phi, batch = setup(method_cls, **overrides)
    g = torch.Generator().manual_seed(11)
    phi = {k: (v + 0.3 * torch.randn(v.shape, generator=g, dtype=v.dtype)
               if ":" in k else v) for k, v in phi.items()}
    return method, task, phi, batch


def test_mtnet_meta_gradient_matches_an_autograd_loop():
    method, task, phi, batch = perturbed(MTNet, batching="loop", mask_temperature=0.7)
    torch.manual_seed(5)
    ours = method.meta_gradient(task, phi, batch).grads

    leaves = {k: v.clone().requires_grad_() for k, v in phi.items()}
    transforms, logits = owned_part(leaves, "transform"), owned_part(leaves, "mask_logit")
    alpha, tau = method.config["inner_lr"], method.config["mask_temperature"]
    torch.manual_seed(5)  # the same uniform draws, task by task and layer by layer
    total = 0.0
    for sx, sy, qx, qy in tasks_of(batch):
        masks = {}
        for layer in ("0", "1", "2"):
            u = torch.rand(logits[layer].shape, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
            relaxed = torch.sigmoid((logits[layer] + torch.log(u / (1 - u))) / tau)
            masks[layer] = relaxed + ((relaxed > 0.5).double() - relaxed).detach()
        theta = task_part(leaves)
        for _ in range(method.config["inner_steps"]):
            keys = list(theta)
            grads = torch.autograd.grad(mse(mtnet_forward(theta, transforms, sx), sy),
                                        [theta[k] for k in keys], create_graph=True)
            theta = {k: theta[k] - alpha * masks[k.split(".")[1]].reshape(
                (-1,) + (1,) * (theta[k].dim() - 1)) * g for k, g in zip(keys, grads, strict=True)}
        total = total + mse(mtnet_forward(theta, transforms, qx), qy)
    reference = dict(zip(leaves, torch.autograd.grad(total / len(batch), list(leaves.values())),
                         strict=True))
    assert relative_difference(ours, reference) <= 1e-10
    assert all(ours[k].norm() > 0 for k in phi)


def test_mtnet_masks_choose_the_adapted_units_and_transforms_change_the_step():
    method, task, phi, batch = setup(MTNet)
    sx, sy, _, _ = tasks_of(batch)[0]
    maml_step = MAML(method.config).adapt(task, task_part(phi), sx, sy, 1)
    # At logits ±50 the sampled masks are 0/1 whatever the noise.
    unmasked = {k: torch.full_like(v, 50.0) if k.startswith("mask_logit:") else v
                for k, v in phi.items()}
    # T = I and every unit unmasked: exactly MAML's step.
    plain = method.adapt(task, unmasked, sx, sy, 1)
    assert all(torch.allclose(plain[k], maml_step[k], rtol=0, atol=1e-14) for k in maml_step)

    frozen_units = torch.tensor([True, False, True, False, True, False])
    masked = {**unmasked, "mask_logit:0": 50.0 - 100.0 * frozen_units.double()}
    adapted = method.adapt(task, masked, sx, sy, 1)
    for key in ("layers.0.weight", "layers.0.bias"):
        assert torch.equal(adapted[key][frozen_units], phi[key][frozen_units])
        assert torch.allclose(adapted[key][~frozen_units], maml_step[key][~frozen_units],
                              rtol=1e-14, atol=0)
    assert torch.allclose(adapted["layers.1.weight"], maml_step["layers.1.weight"],
                          rtol=1e-14, atol=0)

    g = torch.Generator().manual_seed(2)
    transformed = {**unmasked, "transform:1": phi["transform:1"]
                   + 0.2 * torch.randn(6, 6, generator=g, dtype=torch.float64)}
    assert not torch.allclose(method.adapt(task, transformed, sx, sy, 1)["layers.1.weight"],
                              maml_step["layers.1.weight"])


def test_mtnet_mask_samples_follow_bernoulli_of_the_logit():
    torch.manual_seed(0)
    logits = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64).repeat(20000, 1)
    masks = straight_through_mask(logits, temperature=0.5)
    assert set(masks.detach().unique().tolist()) == {0.0, 1.0}
    frequency = masks.detach().mean(0)
    expected = torch.sigmoid(logits[0])
    assert torch.allclose(frequency, expected, atol=0.015)


# -- WarpGrad ------------------------------------------------------------------------------
def test_warpgrad_meta_gradient_matches_its_stated_objectives():
    method, task, phi, batch = perturbed(WarpGrad, inner_steps=3)
    result = method.meta_gradient(task, phi, batch)

    task_leaves = {k: v.clone().requires_grad_() for k, v in task_part(phi).items()}
    warp_leaves = {k: v.clone().requires_grad_() for k, v in owned_part(phi, "warp").items()}
    fixed_warps = {k: v.detach() for k, v in warp_leaves.items()}
    alpha, steps = method.config["inner_lr"], method.config["inner_steps"]

    def step(theta, warps, x, y, create_graph):
        keys = list(theta)
        grads = torch.autograd.grad(mse(mtnet_forward(theta, warps, x), y),
                                    [theta[k] for k in keys], create_graph=create_graph)
        return {k: theta[k] - alpha * g for k, g in zip(keys, grads, strict=True)}

    init_objective, warp_objective, unrolled_objective = 0.0, 0.0, 0.0
    for sx, sy, qx, qy in tasks_of(batch):
        theta, unrolled = dict(task_leaves), dict(task_leaves)
        for _ in range(steps):
            point = {k: v.detach().requires_grad_() for k, v in theta.items()}
            stepped = step(point, warp_leaves, sx, sy, create_graph=True)
            warp_objective = warp_objective + mse(mtnet_forward(stepped, warp_leaves, qx), qy)
            theta = step(theta, fixed_warps, sx, sy, create_graph=True)
            unrolled = step(unrolled, warp_leaves, sx, sy, create_graph=True)
        init_objective = init_objective + mse(mtnet_forward(theta, fixed_warps, qx), qy)
        unrolled_objective = unrolled_objective + mse(mtnet_forward(unrolled, warp_leaves, qx),
                                                      qy)
    batch_size = len(batch)
    reference = dict(zip(task_leaves, torch.autograd.grad(
        init_objective / batch_size, list(task_leaves.values())), strict=True))
    warp_grads = torch.autograd.grad(warp_objective / (batch_size * steps),
                                     list(warp_leaves.values()))
    reference.update({f"warp:{k}": g for k, g in zip(warp_leaves, warp_grads, strict=True)})

    assert result.grads.keys() == reference.keys()
    assert relative_difference(result.grads, reference) <= 1e-10
    assert math.isclose(result.outer_loss, float(init_objective.detach()) / batch_size,
                        rel_tol=1e-12)
    # not back-propagation through the whole inner loop
    unrolled_warp_grads = torch.autograd.grad(unrolled_objective / batch_size,
                                              list(warp_leaves.values()))
    unrolled = {f"warp:{k}": g for k, g in zip(warp_leaves, unrolled_warp_grads, strict=True)}
    assert relative_difference({k: result.grads[k] for k in unrolled}, unrolled) > 1e-3


def test_warp_layers_precondition_the_inner_step():
    method, task, phi, batch = setup(WarpGrad)
    sx, sy, _, _ = tasks_of(batch)[0]
    maml_step = MAML(method.config).adapt(task, task_part(phi), sx, sy, 2)
    identity = method.adapt(task, phi, sx, sy, 2)
    assert all(torch.allclose(identity[k], maml_step[k], rtol=0, atol=1e-14) for k in maml_step)
    # A warp Ω on the scalar output, with the last layer's (W, b) divided by Ω, leaves the
    # model's prediction unchanged and multiplies the gradient for (W, b) by Ω: in the
    # unscaled coordinates Ω·(W, b) the warped step is Ω² times MAML's.
    omega = 3.0
    warped_phi = {**phi, "warp:2": torch.full((1, 1), omega, dtype=torch.float64),
                  "layers.2.weight": phi["layers.2.weight"] / omega,
                  "layers.2.bias": phi["layers.2.bias"] / omega}
    warped = method.adapt(task, warped_phi, sx, sy, 1)
    maml_one = MAML(method.config).adapt(task, task_part(phi), sx, sy, 1)
    for key in ("layers.2.weight", "layers.2.bias"):
        expected = (phi[key] + omega ** 2 * (maml_one[key] - phi[key])) / omega
        assert torch.allclose(warped[key], expected, rtol=1e-12, atol=1e-14)


# -- compatibility and end-to-end ----------------------------------------------------------
class PlainInitTask(Task):
    name = "plain-init"
    kind = META_INIT
    metric = "mse"
    higher_is_better = False


@pytest.mark.parametrize("method_cls", [MTNet, WarpGrad, ANIL])
def test_methods_that_need_a_capability_report_its_absence(method_cls):
    reason = method_cls.incompatibility(PlainInitTask)
    assert reason and method_cls.name in reason
    assert method_cls.incompatibility(Sinusoid) is None


@pytest.mark.parametrize("method_cls", [MetaSGD, ANIL, MTNet, WarpGrad])
def test_short_trial_on_sinusoid_finishes(method_cls):
    config = small_config(Sinusoid, method_cls, iterations=3, meta_batch=4, test_episodes=8,
                          val_episodes=4, curve_points=1, eval_steps=(1, 2))
    measured = run_trial(method_cls, Sinusoid, config)
    assert math.isfinite(measured["metrics"]["mse"])
    assert measured["metrics"]["mse_n"] == 8
