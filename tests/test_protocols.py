"""Protocols: a protocol's settings reach the trial config and its label the record;
named protocols select their task and methods; malformed protocol files and bad
selections stop at planning; the inner loops the protocols switch on (Reptile's Adam,
iMAML's damped CG, DARTS on the proximal problem) against second implementations."""

import pytest
import torch
from torch.func import grad

from benchsuite.core.errors import UsageError
from benchsuite.methods.reptile import AdamState, adam_direction
from benchsuite.running import planning, runner
from benchsuite.running import protocols as protocol_files
from tests.conftest import SHARED_OMNIGLOT
from tests.test_gradients import build
from tests.test_methods_exact import ProximalQuadratic


def plan(registry, methods, tasks, *, root=protocol_files.PACKAGED, **kwargs):
    options = dict(seeds=1, budget="quick", device="cpu", options={}, set_items=[],
                   out="/tmp/benchsuite-protocol-test")
    options.update(kwargs)
    return planning.plan(registry, methods=methods, tasks=tasks,
                       protocols=protocol_files.load(root), **options)


@pytest.fixture
def omniglot_data(monkeypatch):
    if not SHARED_OMNIGLOT.is_dir():
        pytest.skip("the shared Omniglot subset is not beside the checkout")
    monkeypatch.setenv("BENCHSUITE_DATA", str(SHARED_OMNIGLOT))


def test_paper_protocol_settings_reach_the_config_and_the_label(registry, omniglot_data):
    imaml, maml, trhg = (plan(registry, m, "omniglot")[0] for m in ("imaml", "maml", "trhg"))
    assert {k: imaml.config[k] for k in (
        "inner_steps", "inner_lr", "proximal_lambda", "inner_proximal", "pull_back",
        "cg_steps", "cg_regularization", "cg_damping", "meta_batch", "meta_adam_eps",
        "eval_inner_steps", "test_proximal", "query")} == {
        "inner_steps": 16, "inner_lr": 0.1, "proximal_lambda": 2.0, "inner_proximal": False,
        "pull_back": True, "cg_steps": 5, "cg_regularization": 1.0, "cg_damping": 10.0,
        "meta_batch": 32, "meta_adam_eps": 1e-3, "eval_inner_steps": 16,
        "test_proximal": False, "query": 1}
    assert imaml.protocol["label"] == "paper protocol"
    assert "imaml_dev" in imaml.protocol["source"] and imaml.protocol["deviations"]
    # MAML scores after the paper's 3 steps; a method without a protocol at its trained 1
    assert maml.config["eval_inner_steps"] == 3 and maml.config["inner_steps"] == 1
    assert trhg.config["eval_inner_steps"] == 1
    assert trhg.protocol["kind"] == "defaults"


def test_command_line_beats_the_protocol(registry, omniglot_data):
    spec = plan(registry, "imaml", "omniglot", options={"meta_batch": 8},
                set_items=["imaml.inner_steps=4"])[0]
    assert spec.config["meta_batch"] == 8 and spec.config["inner_steps"] == 4
    assert spec.config["eval_inner_steps"] == 16  # the protocol names it: kept
    spec = plan(registry, "fomaml", "omniglot", set_items=["inner_steps=2"])[0]
    assert spec.config["eval_inner_steps"] == 2   # scored at the trained number of steps


def test_floors_are_labelled(registry):
    assert plan(registry, "scratch", "sinusoid")[0].protocol["label"] == "floor"


def test_named_protocols_select_their_task_and_methods(registry, omniglot_data):
    specs = plan(registry, "all", "all", protocol="betty-imaml")
    assert [(s.method, s.task) for s in specs] == [("imaml", "omniglot"), ("darts", "omniglot"),
                                                    ("scratch", "omniglot")]
    assert specs[2].protocol["kind"] == "floor"  # its floor (tests/test_progress.py)
    for spec in specs[:2]:
        assert spec.config["proximal_lambda"] == 0.02 and spec.config["inner_steps"] == 5
        assert spec.config["inner_lr"] == 0.1 and spec.config["meta_batch"] == 16
        assert spec.config["meta_lr"] == 3e-4 and spec.config["test_episodes"] == 500
        assert (spec.config["meta_optimizer"], spec.config["meta_weight_decay"],
                spec.config["meta_lr_schedule"]) == ("adamw", 0.01, "cosine")
        assert spec.config["query"] == 1 and not spec.config["test_proximal"]
        assert spec.protocol["label"] == "protocol betty-imaml"
    assert specs[1].config["unrolled_step"] is False
    reptile = plan(registry, "all", "all", protocol="reptile-torch")[0]
    assert {k: reptile.config[k] for k in (
        "inner_lr", "inner_batch", "inner_steps", "inner_batches", "meta_lr", "iterations",
        "meta_batch", "hidden", "hidden_layers", "activation", "inputs", "test_episodes",
        "shots", "sample_radius", "samples", "eval_inner_steps")} == {
        "inner_lr": 0.02, "inner_batch": 10, "inner_steps": 50, "inner_batches": "resampled",
        "meta_lr": 0.1, "iterations": 1000, "meta_batch": 1, "hidden": 32, "hidden_layers": 3,
        "activation": "tanh", "inputs": "grid", "test_episodes": 100, "shots": 10,
        "sample_radius": 4.0, "samples": 100, "eval_inner_steps": 32}


@pytest.mark.parametrize("methods, tasks, protocol, message", [
    ("all", "sinusoid", "betty-imaml", "is an experiment on omniglot"),
    ("maml", "all", "betty-imaml", "no settings for maml"),
    ("all", "all", "no-such", "unknown --protocol 'no-such'"),
])
def test_bad_protocol_selections_stop_at_planning(registry, methods, tasks, protocol,
                                                  message):
    with pytest.raises(UsageError, match=message):
        plan(registry, methods, tasks, protocol=protocol)


@pytest.mark.parametrize("text, message", [
    ("[sinusoid]\nsettings = { inner_lr = 0.1 }\n", "needs a `source`"),
    ("[sinusoid\n", "not valid TOML"),
    ('[sinusoid]\nsource = "x"\nsettings = { inner_lr = nan }\n', "not a finite number"),
    ('[sinusoid]\nsource = "x"\nsettings = { no_such_key = 1 }\n', "sets no_such_key"),
    ('[sinusoid]\nsource = "x"\nsettings = { inner_lr = "fast" }\n',
     "inner_lr = 'fast', not of the type of its default 0.01"),
    ('[sinusoid]\nsource = "x"\nsettings = { inner_steps = 1.5 }\n',
     "inner_steps = 1.5, not of the type of its default 1"),
])
def test_malformed_protocol_files_are_usage_errors(registry, tmp_path, text, message):
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "maml.toml").write_text(text)
    with pytest.raises(UsageError, match=message):
        plan(registry, "maml", "sinusoid", root=tmp_path)


def test_kept_records_get_the_protocol_label(registry, tmp_path):
    from benchsuite.running.executors import make_executor
    from benchsuite.storage.records import read_record, write_atomic

    def inline():
        return make_executor("inline", timeout=None, address=None)

    set_items = ["sinusoid.iterations=4", "curve_points=1", "val_episodes=2",
                 "test_episodes=2"]
    spec = plan(registry, "maml", "sinusoid", set_items=set_items, out=tmp_path)[0]
    runner.execute([spec], inline(), force=False, quiet=True)
    record = read_record(spec.path)
    assert record["protocol"]["label"] == "paper protocol"
    del record["protocol"]  # a record made before protocols were recorded
    write_atomic(spec.path, record)
    summary = runner.execute([spec], inline(), force=False, quiet=True)
    assert summary.kept and read_record(spec.path)["protocol"]["label"] == "paper protocol"
    assert read_record(spec.path)["metrics"] == record["metrics"]


def test_reptile_adam_is_tensorflows_adam_with_beta1_zero():
    """Adam's direction with β₁ = 0 as TensorFlow's AdamOptimizer steps (ε added to √v, the
    bias correction in the rate) against torch.optim.Adam, whose ε is added to √v̂: the two
    agree when torch's ε at step t is ε/√(1 − β₂ᵗ). Gradients of the size of ε, where the
    placement matters."""
    torch.manual_seed(0)
    theta = {"w": torch.randn(5, dtype=torch.float64)}
    reference = theta["w"].clone().requires_grad_()
    optimizer = torch.optim.Adam([reference], lr=1e-2, betas=(0.0, 0.999))
    state = AdamState({"w": torch.zeros(5, dtype=torch.float64)}, 0)
    for step in range(1, 5):
        g = {"w": 1e-8 * torch.randn(5, dtype=torch.float64)}
        direction, state = adam_direction(g, state)
        theta = {"w": theta["w"] - 1e-2 * direction["w"]}
        reference.grad = g["w"].clone()
        optimizer.param_groups[0]["eps"] = 1e-8 / (1 - 0.999 ** step) ** 0.5
        optimizer.step()
        torch.testing.assert_close(theta["w"], reference.detach(), rtol=1e-12, atol=1e-14)
    assert state.step == 4


def test_reptile_trains_on_support_and_query_when_asked(registry):
    reptile, task, phi, batch, config = build(registry, "reptile", "sinusoid",
                                              train_on_query=True, inner_steps=4,
                                              inner_batch=5, inner_optimizer="adam",
                                              inner_lr=1e-3)
    mean_w = {k: phi[k] - g for k, g in reptile.meta_gradient(task, phi, batch).grads.items()}
    weights = [reptile.adapt(task, phi, torch.cat([batch.support_x[i], batch.query_x[i]]),
                             torch.cat([batch.support_y[i], batch.query_y[i]]), 4)
               for i in range(len(batch))]
    for k in phi:
        torch.testing.assert_close(mean_w[k], torch.stack([w[k] for w in weights]).mean(0),
                                   rtol=1e-5, atol=1e-6)


def test_imaml_damped_cg_solves_the_damped_system(registry):
    """With damping δ, the meta-gradient is (I + A/(λ + δ))⁻¹ ∇F(θ*) (CG exact in 4-D)."""
    imaml = registry.method("imaml").cls
    config = {**ProximalQuadratic.defaults, **imaml.hyperparameters, "batching": "vmap",
              "cg_damping": 1.0}
    task = ProximalQuadratic(config, torch.device("cpu"))
    phi = task.init_meta_params(torch.Generator().manual_seed(0))
    batch = task.sample_batch("train", 3, torch.Generator().manual_seed(1))
    lam, damping = config["proximal_lambda"], 1.0
    a, b, d, c = batch.tensors()
    eye = torch.eye(4, dtype=torch.float64)
    theta_star = torch.linalg.solve(a + lam * eye, (b + lam * phi["w"]).unsqueeze(-1))
    outer_grad = d.unsqueeze(-1) * (theta_star - c.unsqueeze(-1))
    expected = torch.linalg.solve(eye + a / (lam + damping), outer_grad).squeeze(-1).mean(0)
    got = imaml(config).meta_gradient(task, phi, batch).grads["w"]
    assert torch.allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_imaml_as_its_code_runs_it_plain_steps_pull_back_and_regularised_cg(registry):
    """imaml_dev's variant: T plain steps on f, one pull-back step θ ← θ − αλ(θ − φ), then
    ((1 + ρ)I + A/(λ + δ))⁻¹ ∇F(θ*) (CG exact in 4-D), against the closed forms."""
    imaml = registry.method("imaml").cls
    rho, damping = 1.0, 10.0
    config = {**ProximalQuadratic.defaults, **imaml.hyperparameters, "batching": "vmap",
              "inner_proximal": False, "pull_back": True, "cg_regularization": rho,
              "cg_damping": damping, "inner_steps": 7}
    task = ProximalQuadratic(config, torch.device("cpu"))
    phi = task.init_meta_params(torch.Generator().manual_seed(0))
    batch = task.sample_batch("train", 3, torch.Generator().manual_seed(1))
    lam, alpha, steps = config["proximal_lambda"], config["inner_lr"], config["inner_steps"]
    a, b, d, c = batch.tensors()
    eye = torch.eye(4, dtype=torch.float64)
    minimum = torch.linalg.solve(a, b.unsqueeze(-1))
    contraction = torch.linalg.matrix_power(eye - alpha * a, steps)
    theta_plain = minimum + contraction @ (phi["w"].view(4, 1) - minimum)
    theta_star = theta_plain - alpha * lam * (theta_plain - phi["w"].view(4, 1))
    outer_grad = d.unsqueeze(-1) * (theta_star - c.unsqueeze(-1))
    expected = torch.linalg.solve((1 + rho) * eye + a / (lam + damping), outer_grad)
    got = imaml(config).meta_gradient(task, phi, batch).grads["w"]
    assert torch.allclose(got, expected.squeeze(-1).mean(0), rtol=1e-8, atol=1e-12)


def test_imaml_tests_without_the_proximal_term_when_asked(registry):
    imaml = registry.method("imaml").cls
    config = {**ProximalQuadratic.defaults, **imaml.hyperparameters, "test_proximal": False}
    task = ProximalQuadratic(config, torch.device("cpu"))
    phi = task.init_meta_params(torch.Generator().manual_seed(0))
    a, b, _, _ = task.sample_batch("test", 1, torch.Generator().manual_seed(1)).tensors()
    theta = imaml(config).adapt(task, phi, a[0], b[0], 200)["w"]
    # plain gradient descent on f converges to A⁻¹ b, not to the proximal (A + λI)⁻¹(b + λφ)
    torch.testing.assert_close(theta, torch.linalg.solve(a[0], b[0]), rtol=1e-6, atol=1e-8)


def test_darts_on_a_meta_initialisation_is_xi_lambda_outer_gradient(registry):
    """On the proximal problem, DARTS' estimate is ξ λ ∇_θ F(w', φ): the finite difference
    of ∇_φ[λ/2 ‖θ − φ‖²] = −λ(θ − φ) along u is exactly −λ u."""
    darts, task, phi, batch, config = build(registry, "darts", "sinusoid", proximal_lambda=0.5,
                                            inner_steps=3, batching="loop")
    xi, lam = config["inner_lr"], 0.5
    expected = {k: torch.zeros_like(v) for k, v in phi.items()}
    for t in range(len(batch)):
        w = darts.adapt(task, phi, batch.support_x[t], batch.support_y[t], 3)
        def inner(theta, phi, x=batch.support_x[t], y=batch.support_y[t]):
            distance = sum(((theta[k] - phi[k]) ** 2).sum() for k in theta)
            return task.inner_loss(theta, phi, x, y) + 0.5 * lam * distance

        w_unrolled = {k: w[k] - xi * g for k, g in grad(inner)(w, phi).items()}
        u = grad(task.outer_loss)(w_unrolled, phi, batch.query_x[t], batch.query_y[t])
        expected = {k: expected[k] + xi * lam * u[k] / len(batch) for k in phi}
    got = darts.meta_gradient(task, phi, batch).grads
    for k in phi:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-3, atol=1e-7)


def test_the_leaderboard_shows_each_rows_protocol(registry, tmp_path):
    from benchsuite.reporting.report import write_report
    from benchsuite.running.executors import make_executor

    set_items = ["sinusoid.iterations=4", "curve_points=1", "val_episodes=2",
                 "test_episodes=2"]
    specs = plan(registry, "maml,fomaml,trhg,scratch", "sinusoid", set_items=set_items,
                 out=tmp_path / "results")
    runner.execute(specs, make_executor("inline", timeout=None, address=None), force=False,
                   quiet=True)
    board, _ = write_report(tmp_path / "results", tmp_path / "report", registry)
    tables = [[[cell.strip() for cell in line.split("|")[1:-1]] for line in block.splitlines()
               if "---" not in line]
              for block in board.read_text().split("\n\n") if block.startswith("| ")]
    main, diagnostics = tables[0], next(t for t in tables if "meta-batch" in t[0])
    rows = {row[1]: row[2] for row in main[1:]}
    # the committed protocols/: maml's paper, fomaml's tuned table, nothing for trhg
    assert rows == {"maml": "paper protocol", "fomaml": "tuned (budget 4)",
                    "trhg": "task defaults", "scratch": "floor"}
    # what each row trained with: the task's meta-batch, the command line's iterations
    header = diagnostics[0]
    budget = {row[0]: (row[header.index("meta-iterations")], row[header.index("meta-batch")])
              for row in diagnostics[1:]}
    assert budget["maml"] == ("4", str(registry.task("sinusoid").cls.defaults["meta_batch"]))
    text = board.read_text()
    assert "- maml — paper protocol: Finn et al. 2017, Sec. 5.1" in text
    assert "floor (best)" in text  # the floor is recognised by its protocol


# -- where protocols live --------------------------------------------------------------------
def test_the_wheel_ships_the_protocols_and_the_grids(tmp_path):
    """`pip install .` elsewhere finds them: they are package data of the wheel."""
    import shutil
    import subprocess
    import sys
    import zipfile

    from tests.conftest import REPO

    source = tmp_path / "src"
    for name in ("benchsuite", "methods", "tasks"):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("protocols", "grids"):
        files = {str(p.relative_to(REPO)) for p in (REPO / "benchsuite" / folder).rglob("*.toml")}
        assert files and files <= shipped, folder


def test_user_protocols_are_read_after_the_packages_and_win(registry, tmp_path, monkeypatch):
    monkeypatch.setenv(protocol_files.USER_VARIABLE, str(tmp_path))
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "quadratic.toml").write_text(
        '[maml]\nsource = "my tuning"\nbudget = 4\nsettings = { inner_lr = 0.05 }\n')
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "maml.toml").write_text(
        '[sinusoid]\nsource = "my reading of Finn et al."\nsettings = { inner_lr = 0.02 }\n')
    loaded = protocol_files.load()
    assert protocol_files.load(protocol_files.PACKAGED).paper["maml", "omniglot"] == (
        loaded.paper["maml", "omniglot"])  # the package's others stay
    specs = {s.task: s for s in planning.plan(registry, methods="maml",
                                              tasks="quadratic,sinusoid", device="cpu")}
    assert specs["quadratic"].protocol["source"] == "my tuning"
    assert specs["quadratic"].config["inner_lr"] == 0.05
    assert specs["sinusoid"].protocol["source"] == "my reading of Finn et al."
    assert specs["sinusoid"].config["inner_lr"] == 0.02
