"""Meta-gradients of the foundation methods against second implementations and closed forms."""

import copy

import learn2learn as l2l
import pytest
import torch
from torch import nn

from benchsuite.core.functional import flatten
from benchsuite.core.seeding import generator
from benchsuite.running.config import resolve


def build(registry, method, task, **overrides):
    task_cls, method_cls = registry.task(task).cls, registry.method(method).cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu", options={},
                     overrides=[])
    config.update(overrides)
    task_obj = task_cls(config, torch.device("cpu"))
    phi = method_cls(config).init_meta_params(task_obj, generator("test-init"))
    batch = task_obj.sample_batch("train", config["meta_batch"], generator("test-batch"))
    return method_cls(config), task_obj, phi, batch, config


def relative_difference(a: dict, b: dict) -> float:
    a, b = flatten(a).double(), flatten({k: b[k] for k in a}).double()
    return float((a - b).norm() / b.norm())


def sinusoid_module(phi):
    module = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                           nn.Linear(40, 1))
    with torch.no_grad():
        for index, layer in enumerate(module[::2]):
            layer.weight.copy_(phi[f"layers.{index}.weight"])
            layer.bias.copy_(phi[f"layers.{index}.bias"])
    return module


def learn2learn_meta_gradient(phi, batch, steps, lr, first_order):
    module = l2l.algorithms.MAML(sinusoid_module(phi), lr=lr, first_order=first_order)
    meta_loss = 0.0
    for t in range(len(batch)):
        learner = module.clone()
        for _ in range(steps):
            learner.adapt(nn.functional.mse_loss(learner(batch.support_x[t]), batch.support_y[t]))
        meta_loss = meta_loss + nn.functional.mse_loss(learner(batch.query_x[t]),
                                                       batch.query_y[t])
    (meta_loss / len(batch)).backward()
    layers = module.module[::2]
    return {**{f"layers.{i}.weight": layer.weight.grad for i, layer in enumerate(layers)},
            **{f"layers.{i}.bias": layer.bias.grad for i, layer in enumerate(layers)}}


@pytest.mark.parametrize("batching", ["vmap", "loop"])
@pytest.mark.parametrize("method,first_order", [("maml", False), ("fomaml", True)])
def test_maml_family_matches_learn2learn(registry, method, first_order, batching):
    maml, task, phi, batch, config = build(registry, method, "sinusoid", inner_steps=3,
                                           meta_batch=6, batching=batching)
    ours = maml.meta_gradient(task, phi, batch).grads
    reference = learn2learn_meta_gradient(phi, batch, 3, config["inner_lr"], first_order)
    assert relative_difference(ours, reference) <= 1e-5


@pytest.mark.parametrize("first_order", [False, True])
def test_l2l_maml_reference_adapter_equals_maml(registry, first_order):
    ours, task, phi, batch, _ = build(registry, "fomaml" if first_order else "maml",
                                      "sinusoid", inner_steps=2, meta_batch=4)
    reference, *_ = build(registry, "l2l-maml", "sinusoid", inner_steps=2, meta_batch=4,
                          first_order=first_order)
    assert relative_difference(ours.meta_gradient(task, phi, batch).grads,
                               reference.meta_gradient(task, phi, batch).grads) <= 1e-5


def test_trhg_on_a_meta_initialisation_spans_fomaml_to_maml(registry):
    """With ∂θ_T−K/∂θ₀ ≈ I, K = T is MAML and K = 0 is first-order MAML."""
    results = {}
    for name, truncate in (("maml", None), ("fomaml", None), ("trhg", 3), ("trhg", 0)):
        method, task, phi, batch, _ = build(registry, name, "sinusoid", inner_steps=3,
                                            meta_batch=4, truncate_steps=truncate or 0)
        results[(name, truncate)] = method.meta_gradient(task, phi, batch).grads
    assert relative_difference(results[("trhg", 3)], results[("maml", None)]) <= 1e-6
    assert relative_difference(results[("trhg", 0)], results[("fomaml", None)]) <= 1e-6
    assert relative_difference(results[("maml", None)], results[("fomaml", None)]) > 1e-3


def test_fomaml_is_the_stated_first_order_expression(registry):
    """FOMAML's hypergradient is ∇_θ F at the adapted θ (θ₀ = φ), averaged over tasks."""
    fomaml, task, phi, batch, config = build(registry, "fomaml", "sinusoid", inner_steps=2,
                                             meta_batch=3)
    expected = {k: torch.zeros_like(v) for k, v in phi.items()}
    for t in range(len(batch)):
        theta = {k: v.clone() for k, v in phi.items()}
        for _ in range(2):
            theta = {k: v.requires_grad_() for k, v in theta.items()}
            g = torch.autograd.grad(task.inner_loss(theta, phi, batch.support_x[t],
                                                    batch.support_y[t]), list(theta.values()))
            theta = {k: (v - config["inner_lr"] * gk).detach() for (k, v), gk in
                     zip(theta.items(), g)}
        theta = {k: v.requires_grad_() for k, v in theta.items()}
        g = torch.autograd.grad(task.outer_loss(theta, phi, batch.query_x[t], batch.query_y[t]),
                                list(theta.values()))
        expected = {k: expected[k] + gk / len(batch) for k, gk in zip(theta, g)}
    assert relative_difference(fomaml.meta_gradient(task, phi, batch).grads, expected) <= 1e-6


def test_reptile_update_is_phi_plus_epsilon_w_minus_phi(registry):
    # one epoch over 10 support points in batches of 5 (the Reptile-Torch settings)
    reptile, task, phi, batch, config = build(registry, "reptile", "sinusoid", inner_steps=2,
                                              inner_lr=0.02)
    assert config["meta_optimizer"] == "sgd" and config["meta_lr"] == 0.1
    weights = []
    for t in range(len(batch)):  # explicit mini-batch SGD, written out independently
        theta = {k: v.clone() for k, v in phi.items()}
        for step in range(2):  # 10 support points, inner batch 5, one epoch
            rows = slice(5 * step, 5 * step + 5)
            theta = {k: v.requires_grad_() for k, v in theta.items()}
            g = torch.autograd.grad(task.inner_loss(theta, phi, batch.support_x[t][rows],
                                                    batch.support_y[t][rows]),
                                    list(theta.values()))
            theta = {k: (v - 0.02 * gk).detach() for (k, v), gk in zip(theta.items(), g)}
        weights.append(theta)
    mean_w = {k: torch.stack([w[k] for w in weights]).mean(0) for k in phi}
    params = {k: v.clone() for k, v in phi.items()}
    optimizer = torch.optim.SGD(list(params.values()), lr=config["meta_lr"])
    for k, g in reptile.meta_gradient(task, phi, batch).grads.items():
        params[k].grad = g
    optimizer.step()
    for k in phi:
        torch.testing.assert_close(params[k], phi[k] + 0.1 * (mean_w[k] - phi[k]),
                                   rtol=1e-6, atol=1e-7)


def test_quadratic_closed_form_matches_finite_differences(registry):
    """The task's exact hypergradient is itself checked against central differences of
    F(θ*(φ), φ) with θ* from a direct solve."""
    _, task, phi, batch, _ = build(registry, "maml", "quadratic")
    a, c, cmat, b = batch.tensors()

    def value(p):
        theta = torch.linalg.solve(a, (p + c).unsqueeze(-1)).squeeze(-1)
        return torch.stack([task.outer_loss({"theta": theta[t]}, {"phi": p}, cmat[t], b[t])
                            for t in range(len(batch))]).mean()

    exact = task.exact_hypergradient(phi, batch)["phi"]
    eps = 1e-6
    basis = torch.eye(phi["phi"].numel(), dtype=torch.float64)
    numeric = torch.stack([(value(phi["phi"] + eps * e) - value(phi["phi"] - eps * e)) / (2 * eps)
                           for e in basis])
    torch.testing.assert_close(exact, numeric, rtol=1e-6, atol=1e-8)


def test_rhg_converges_to_the_exact_hypergradient(registry):
    maml, task, phi, batch, _ = build(registry, "maml", "quadratic", inner_steps=150)
    estimate = maml.meta_gradient(task, phi, batch).grads
    assert relative_difference(estimate, task.exact_hypergradient(phi, batch)) <= 1e-4
    # and a short unroll is measurably not exact: the check can fail
    short, *_ = build(registry, "maml", "quadratic", inner_steps=3)
    assert relative_difference(short.meta_gradient(task, phi, batch).grads,
                               task.exact_hypergradient(phi, batch)) > 1e-2


def test_vmap_and_loop_batching_agree(registry):
    results = []
    for batching in ("vmap", "loop"):
        maml, task, phi, batch, _ = build(registry, "maml", "sinusoid", batching=batching,
                                          inner_steps=2)
        results.append(maml.meta_gradient(task, copy.deepcopy(phi), batch).grads)
    assert relative_difference(*results) <= 1e-6
