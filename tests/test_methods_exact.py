"""Hypergradient methods against exact answers: closed forms (quadratic, ridge, an iMAML
quadratic), second implementations (an explicit autograd loop for BDA, autograd of the
one-step unroll for DARTS) and finite differences of the unrolled objectives."""

import math

import pytest
import torch
from torch.func import grad, vmap
from typer.testing import CliRunner

from benchsuite.cli import app
from benchsuite.core.contract import META_INIT, META_REPRESENTATION, EpisodeBatch, Task
from benchsuite.core.functional import (
    conjugate_gradient,
    flatten,
    gradient_descent,
    gradient_step,
    inner_gradient,
)
from benchsuite.core.seeding import generator
from benchsuite.running.trial import compare_hypergradients, run_trial
from tests.conftest import small_config

SMALL_QUADRATIC = {"dim": 6, "instances": 3, "meta_batch": 3}


def setup(registry, method, task, **overrides):
    """Method, task, φ₀ and the fixed meta-batch a trial scores fidelity on."""
    method_cls, task_cls = registry.method(method).cls, registry.task(task).cls
    config = small_config(task_cls, method_cls, **overrides)
    task_obj = task_cls(config, torch.device("cpu"))
    phi = method_cls(config).init_meta_params(task_obj, generator(task, 0, "init"))
    batch = task_obj.sample_batch("train", config["meta_batch"], generator(task, 0, "fidelity"))
    return method_cls(config), task_obj, phi, batch


def relative_error(registry, method, task, **overrides):
    m, t, phi, batch = setup(registry, method, task, **overrides)
    exact = t.exact_hypergradient(phi, batch)
    return compare_hypergradients(m.meta_gradient(t, phi, batch).grads, exact)


# -- methods exact in the limit -----------------------------------------------------------
EXACT_IN_THE_LIMIT = [
    ("maml", {"inner_steps": 150}),
    ("trhg", {"inner_steps": 150, "truncate_steps": 150}),
    ("implicit-cg", {"cg_steps": 6}),                 # dim(θ) CG steps on the quadratic
    ("implicit-neumann", {"neumann_terms": 120}),
    ("implicit-fp", {"fp_iterations": 120}),
]


@pytest.mark.parametrize("method, overrides", EXACT_IN_THE_LIMIT, ids=lambda p: str(p))
def test_quadratic_hypergradient_reaches_closed_form(registry, method, overrides):
    fidelity = relative_error(registry, method, "quadratic", **SMALL_QUADRATIC, **overrides)
    assert fidelity["hypergrad_rel_error"] <= 1e-4
    assert fidelity["hypergrad_cosine"] > 1 - 1e-8


@pytest.mark.parametrize("method, overrides", [
    ("maml", {}), ("trhg", {"truncate_steps": 100}), ("implicit-cg", {"cg_steps": 14}),
    ("implicit-neumann", {"neumann_terms": 60}), ("implicit-fp", {"fp_iterations": 60}),
], ids=lambda p: str(p))
def test_ridge_hypergradient_reaches_closed_form(registry, method, overrides):
    fidelity = relative_error(registry, method, "ridge", noise_features=4, **overrides)
    assert fidelity["hypergrad_rel_error"] <= 1e-4


def test_truncated_approximations_converge_and_are_not_exact(registry):
    """Each knob must matter: few steps give a visibly wrong hypergradient, and the error
    falls as the knob grows."""
    for method, knob in (("trhg", "truncate_steps"), ("implicit-cg", "cg_steps"),
                         ("implicit-neumann", "neumann_terms"), ("maml", "inner_steps")):
        errors = [relative_error(registry, method, "quadratic", **SMALL_QUADRATIC,
                                 **{knob: k})["hypergrad_rel_error"] for k in (1, 3, 5)]
        assert errors[0] > 1e-2, method
        assert errors[0] > errors[1] > errors[2], (method, errors)


def test_truncation_neumann_and_fixed_point_agree_at_the_inner_optimum(registry):
    """At a converged inner solution, K-step truncated back-prop, the K-term Neumann series
    and K fixed-point iterations are the same linear approximation (Shaban et al. 2019;
    Lorraine et al. 2020; Grazzi et al. 2020): three implementations, one answer."""
    grads = [setup_and_grad(registry, method, **{knob: 7})
             for method, knob in (("trhg", "truncate_steps"), ("implicit-neumann",
                                                                "neumann_terms"),
                                  ("implicit-fp", "fp_iterations"))]
    for other in grads[1:]:
        assert torch.allclose(grads[0], other, rtol=1e-9, atol=1e-12)


def setup_and_grad(registry, method, **overrides):
    m, t, phi, batch = setup(registry, method, "quadratic", **SMALL_QUADRATIC,
                             inner_steps=150, **overrides)
    return flatten(m.meta_gradient(t, phi, batch).grads)


# -- a tiny meta-representation task: φ = features, θ = linear head -----------------------
class TinyRepresentation(Task):
    name = "tiny-representation"
    kind = META_REPRESENTATION
    metric = "mse"
    higher_is_better = False
    defaults = {"inner_steps": 4, "inner_lr": 0.3, "meta_batch": 3, "iterations": 1,
                "meta_lr": 0.1, "eval_inner_steps": 4}

    def init_meta_params(self, generator):
        return {"features": torch.randn(3, 4, generator=generator, dtype=torch.float64) * 0.7}

    def initial_theta(self, phi):
        return {"head": torch.zeros(4, dtype=torch.float64)}

    def predict(self, theta, phi, x):
        return torch.tanh(x @ phi["features"]) @ theta["head"]

    def inner_loss(self, theta, phi, x, y):
        return ((self.predict(theta, phi, x) - y) ** 2).mean() + 0.05 * (theta["head"] ** 2).sum()

    def outer_loss(self, theta, phi, x, y):
        return ((self.predict(theta, phi, x) - y) ** 2).mean()

    def sample_batch(self, split, size, generator):
        x = torch.randn(size, 10, 3, generator=generator, dtype=torch.float64)
        y = torch.sin(x.sum(-1)) + 0.1 * torch.randn(size, 10, generator=generator,
                                                     dtype=torch.float64)
        return EpisodeBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])


def tiny_setup(method_cls, **overrides):
    config = {**TinyRepresentation.defaults, **method_cls.hyperparameters,
              "batching": "vmap", **overrides}
    task = TinyRepresentation(config, torch.device("cpu"))
    phi = task.init_meta_params(torch.Generator().manual_seed(1))
    batch = task.sample_batch("train", 3, torch.Generator().manual_seed(2))
    return method_cls(config), task, phi, batch


@pytest.mark.parametrize("method, overrides", [
    ("maml", {}), ("trhg", {"truncate_steps": 4}), ("bda", {}),
], ids=lambda p: str(p))
def test_meta_gradient_matches_finite_differences(registry, method, overrides):
    """Methods that claim the exact gradient of their unrolled objective: central finite
    differences of the meta-objective the method itself reports (its outer loss)."""
    m, task, phi, batch = tiny_setup(registry.method(method).cls, **overrides)
    analytic = m.meta_gradient(task, phi, batch).grads["features"]
    h = 1e-6
    numeric = torch.zeros_like(phi["features"])
    for index in range(phi["features"].numel()):
        bump = torch.zeros_like(phi["features"]).view(-1)
        bump[index] = h
        bump = bump.view_as(phi["features"])
        up = m.meta_gradient(task, {"features": phi["features"] + bump}, batch).outer_loss
        down = m.meta_gradient(task, {"features": phi["features"] - bump}, batch).outer_loss
        numeric.view(-1)[index] = (up - down) / (2 * h)
    assert (analytic - numeric).norm() / numeric.norm() < 1e-6


def test_truncated_meta_gradient_differs_from_full_when_k_below_t(registry):
    full = tiny_setup(registry.method("trhg").cls, truncate_steps=4)
    short = tiny_setup(registry.method("trhg").cls, truncate_steps=1)
    g_full = full[0].meta_gradient(*full[1:]).grads["features"]
    g_short = short[0].meta_gradient(*short[1:]).grads["features"]
    assert (g_full - g_short).norm() > 1e-3 * g_full.norm()


def test_bda_equals_explicit_autograd_loop(registry):
    """BDA's hypergradient against back-propagation through its aggregated dynamics written
    as a plain loop with torch.autograd, one task at a time."""
    m, task, phi, batch = tiny_setup(registry.method("bda").cls, aggregation_mu=0.7)
    features = phi["features"].clone().requires_grad_(True)
    total = 0.0
    for b in range(len(batch)):
        sx, sy, qx, qy = (t[b] for t in batch.tensors())
        head = torch.zeros(4, dtype=torch.float64, requires_grad=True)
        theta = head
        for k in range(task.defaults["inner_steps"]):
            weight = 0.7 / (k + 1)
            upper, = torch.autograd.grad(task.outer_loss({"head": theta},
                                                         {"features": features}, qx, qy),
                                         theta, create_graph=True)
            lower, = torch.autograd.grad(task.inner_loss({"head": theta},
                                                         {"features": features}, sx, sy),
                                         theta, create_graph=True)
            theta = theta - 0.3 * (weight * upper + (1 - weight) * lower)
        total = total + task.outer_loss({"head": theta}, {"features": features}, qx, qy)
    expected, = torch.autograd.grad(total / len(batch), features)
    got = m.meta_gradient(task, phi, batch).grads["features"]
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-13)


def one_step_unrolled(task, phi, batch, inner_steps, xi):
    """∇_φ of F(w − ξ∇_w f(w, φ), φ) with w the detached inner iterate: the quantity DARTS
    approximates, by autograd instead of finite differences."""
    def objective(phi):
        losses = []
        for b in range(len(batch)):
            sx, sy, qx, qy = (t[b] for t in batch.tensors())
            w = gradient_descent(task, task.initial_theta(phi), phi, sx, sy, inner_steps, xi)
            w = {k: v.detach() for k, v in w.items()}
            unrolled = gradient_step(w, inner_gradient(task, w, phi, sx, sy), xi)
            losses.append(task.outer_loss(unrolled, phi, qx, qy))
        return torch.stack(losses).mean()

    return grad(objective)(phi)


def test_darts_equals_one_step_unroll_on_quadratic(registry):
    # ∇_φ f is linear in w here, so the central difference is exact up to rounding.
    m, task, phi, batch = setup(registry, "darts", "quadratic", **SMALL_QUADRATIC)
    expected = one_step_unrolled(task, phi, batch, m.config["inner_steps"],
                                 m.config["inner_lr"])
    got = m.meta_gradient(task, phi, batch).grads
    assert compare_hypergradients(got, expected)["hypergrad_rel_error"] < 1e-8


def test_darts_equals_one_step_unroll_up_to_finite_difference_error(registry):
    m, task, phi, batch = tiny_setup(registry.method("darts").cls)
    expected = one_step_unrolled(task, phi, batch, 4, 0.3)
    error = compare_hypergradients(m.meta_gradient(task, phi, batch).grads,
                                   expected)["hypergrad_rel_error"]
    assert 0 < error < 1e-3  # O(ε²) central-difference error, ε = 0.01 / ‖∇_w' F‖


# -- iMAML on a meta-initialisation quadratic with its own closed form ---------------------
class ProximalQuadratic(Task):
    """f(θ; S) = ½ θᵀAθ − bᵀθ, F(θ; Q) = ½ ‖θ − c‖² weighted by diag(d); θ₀ = φ."""

    name = "proximal-quadratic"
    kind = META_INIT
    metric = "outer_loss"
    higher_is_better = False
    defaults = {"inner_steps": 80, "inner_lr": 0.15, "meta_batch": 3, "iterations": 1,
                "meta_lr": 0.1, "eval_inner_steps": 80}

    def init_meta_params(self, generator):
        return {"w": torch.randn(4, generator=generator, dtype=torch.float64)}

    def initial_theta(self, phi):
        return dict(phi)

    def inner_loss(self, theta, phi, a, b):
        return 0.5 * theta["w"] @ a @ theta["w"] - b @ theta["w"]

    def outer_loss(self, theta, phi, d, c):
        return 0.5 * (d * (theta["w"] - c) ** 2).sum()

    def sample_batch(self, split, size, generator):
        q, _ = torch.linalg.qr(torch.randn(size, 4, 4, generator=generator, dtype=torch.float64))
        spectrum = 1 + 2 * torch.rand(size, 4, generator=generator, dtype=torch.float64)
        a = q @ torch.diag_embed(spectrum) @ q.transpose(1, 2)
        return EpisodeBatch(a, torch.randn(size, 4, generator=generator, dtype=torch.float64),
                            0.5 + torch.rand(size, 4, generator=generator, dtype=torch.float64),
                            torch.randn(size, 4, generator=generator, dtype=torch.float64))


def test_imaml_matches_its_closed_form(registry):
    """θ* = (A + λI)⁻¹(b + λφ) and iMAML's meta-gradient (I + A/λ)⁻¹ ∇F(θ*), exactly (CG
    with 5 steps is exact on a 4-dimensional system)."""
    imaml = registry.method("imaml").cls
    config = {**ProximalQuadratic.defaults, **imaml.hyperparameters, "batching": "vmap"}
    task = ProximalQuadratic(config, torch.device("cpu"))
    phi = task.init_meta_params(torch.Generator().manual_seed(0))
    batch = task.sample_batch("train", 3, torch.Generator().manual_seed(1))
    lam = config["proximal_lambda"]
    a, b, d, c = batch.tensors()
    eye = torch.eye(4, dtype=torch.float64)
    theta_star = torch.linalg.solve(a + lam * eye, (b + lam * phi["w"]).unsqueeze(-1))
    outer_grad = d.unsqueeze(-1) * (theta_star - c.unsqueeze(-1))
    expected = torch.linalg.solve(eye + a / lam, outer_grad).squeeze(-1).mean(0)
    got = imaml(config).meta_gradient(task, phi, batch).grads["w"]
    assert torch.allclose(got, expected, rtol=1e-8, atol=1e-12)

    config["cg_steps"] = 1  # one CG step is a different (worse) answer: the knob matters
    rough = imaml(config).meta_gradient(task, phi, batch).grads["w"]
    assert (rough - expected).norm() > 1e-3 * expected.norm()


def test_conjugate_gradient_stops_at_negative_curvature_per_task():
    """On an SPD system CG is exact after n steps; on an indefinite one it keeps the iterate
    reached before the first non-positive curvature instead of overflowing — per task
    under vmap. For M = diag(3, −1, 1), b = 1: one step gives x = 1, then dᵀMd < 0."""
    spd = torch.tensor([[4.0, 1, 0], [1, 3, 1], [0, 1, 2]], dtype=torch.float64)
    indefinite = torch.diag(torch.tensor([3.0, -1.0, 1.0], dtype=torch.float64))
    rhs = torch.tensor([[1.0, 2, 3], [1, 1, 1]], dtype=torch.float64)

    def solve(matrix, b):
        return conjugate_gradient(lambda v: {"x": matrix @ v["x"]}, {"x": b}, 6)["x"]

    x = vmap(solve)(torch.stack([spd, indefinite]), rhs)
    assert torch.allclose(x[0], torch.linalg.solve(spd, rhs[0]), atol=1e-12)
    assert torch.equal(x[1], torch.ones(3, dtype=torch.float64))


# -- the ridge task's own exact hypergradient --------------------------------------------
def test_ridge_exact_hypergradient_matches_finite_differences(registry):
    ridge = registry.task("ridge").cls
    config = small_config(ridge, registry.method("maml").cls, noise_features=3)
    task = ridge(config, torch.device("cpu"))
    batch = task.sample_batch("train", 4, torch.Generator())
    phi = {"log_reg": torch.linspace(-1, 1, task.features(), dtype=torch.float64)}

    def validation_loss(log_reg):
        xs, ys, xq, yq = batch.tensors()
        hessian = xs.transpose(1, 2) @ xs / xs.shape[1] + torch.diag(log_reg.exp())
        theta = torch.linalg.solve(hessian, xs.transpose(1, 2) @ ys.unsqueeze(-1) / xs.shape[1])
        return ((xq @ theta - yq.unsqueeze(-1)) ** 2).mean()

    h = 1e-6
    numeric = torch.stack([(validation_loss(phi["log_reg"] + h * e)
                            - validation_loss(phi["log_reg"] - h * e)) / (2 * h)
                           for e in torch.eye(task.features(), dtype=torch.float64)])
    exact = task.exact_hypergradient(phi, batch)["log_reg"]
    assert torch.allclose(exact, numeric, rtol=1e-6, atol=1e-10)
    assert batch.support_x.shape == (4, 270, 13) and batch.query_x.shape == (4, 90, 13)


def test_ridge_trial_records_hypergradient_fidelity(registry):
    method_cls, task_cls = registry.method("implicit-cg").cls, registry.task("ridge").cls
    config = small_config(task_cls, method_cls, iterations=2, curve_points=1,
                          noise_features=4, cg_steps=30, warmup=0)
    measured = run_trial(method_cls, task_cls, config)
    assert measured["metrics"]["hypergrad_rel_error"] < 1e-4
    assert measured["metrics"]["hypergrad_cosine"] > 1 - 1e-8
    assert measured["metrics"]["mse_n"] == config["test_rows"]
    assert math.isfinite(measured["metrics"]["mse"])


# -- the sweep ----------------------------------------------------------------------------
def test_sweep_writes_csv_and_figure(tmp_path, registry):
    import csv

    result = CliRunner().invoke(app, [
        "sweep", "--methods", "maml,implicit-cg", "--tasks", "quadratic", "--grid", "2,6",
        "--repeats", "1", "--device", "cpu", "--out", str(tmp_path), "-q",
        "--set", "dim=6", "--set", "instances=3", "--set", "meta_batch=3"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "sweep.csv")))
    assert [(r["method"], r["knob"], r["value"]) for r in rows] == [
        ("maml", "inner_steps", "2"), ("maml", "inner_steps", "6"),
        ("implicit-cg", "cg_steps", "2"), ("implicit-cg", "cg_steps", "6")]
    by_point = {(r["method"], int(r["value"])): float(r["rel_error"]) for r in rows}
    assert by_point[("implicit-cg", 6)] < 1e-4 < by_point[("implicit-cg", 2)]
    assert by_point[("maml", 2)] == pytest.approx(relative_error(
        registry, "maml", "quadratic", **SMALL_QUADRATIC, inner_steps=2)["hypergrad_rel_error"])
    assert all(float(r["seconds"]) > 0 for r in rows)
    figure = tmp_path / "sweep" / "sweep-quadratic.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("arguments, message", [
    (["--tasks", "sinusoid"], "no exact hypergradient"),
    (["--grid", "0,4"], "bad --grid"),
    (["--methods", "imaml", "--tasks", "quadratic"], "imaml cannot run on quadratic"),
    (["--methods", "maml", "--repeats", "0"], "--repeats"),
])
def test_sweep_usage_errors_exit_2_and_write_nothing(tmp_path, arguments, message):
    result = CliRunner().invoke(app, ["sweep", *arguments, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "r").exists()
