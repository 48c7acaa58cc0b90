"""The reference leaderboard: the pretraining baseline, `benchsuite verify` (on fresh
records, tampered ones, and the committed reference records), and the published-number
comparison of the report."""

import json
import os
from pathlib import Path

import pytest
import torch

from benchsuite.core.seeding import generator
from benchsuite.running.config import trial_id
from benchsuite.running.trial import run_trial
from tests.conftest import REPO, SHARED_OMNIGLOT, small_config
from tests.test_suite import cli, records_in

REFERENCE = REPO / "results" / "reference"


def run_records(out: Path, methods: str, iterations: int = 40) -> dict[str, dict]:
    result = cli("run", "--methods", methods, "--tasks", "sinusoid", "--out", out,
                 "--iterations", iterations, "--set", "test_episodes=40",
                 "--set", "val_episodes=10", "--set", "curve_points=4", "-q")
    assert result.returncode == 0, result.stderr
    return records_in(out)


def rewrite(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


# -- the pretraining baseline ----------------------------------------------------------------
def test_pretrain_gradient_is_the_pooled_regression_gradient(registry):
    task_cls, method_cls = registry.task("sinusoid").cls, registry.method("pretrain").cls
    config = small_config(task_cls, method_cls, meta_batch=6)
    task, method = task_cls(config, torch.device("cpu")), method_cls(config)
    phi = task.init_meta_params(generator("sinusoid", 0, "init"))
    batch = task.sample_batch("train", 6, generator("sinusoid", 0, "train"))

    leaves = {k: v.clone().requires_grad_() for k, v in phi.items()}
    losses = [task.inner_loss(leaves, leaves, torch.cat([sx, qx]), torch.cat([sy, qy]))
              for sx, sy, qx, qy in zip(*batch.tensors())]
    expected = torch.autograd.grad(torch.stack(losses).mean(), list(leaves.values()))
    result = method.meta_gradient(task, phi, batch)
    for key, grad in zip(leaves, expected):
        torch.testing.assert_close(result.grads[key], grad, rtol=1e-5, atol=1e-7)
    assert result.outer_loss == pytest.approx(float(torch.stack(losses).mean().detach()), rel=1e-6)

    # fine-tuning at test time: plain gradient descent from φ at the task's inner_lr
    sx, sy = batch.support_x[0], batch.support_y[0]
    adapted = method.adapt(task, phi, sx, sy, steps=1)
    theta = {k: v.clone().requires_grad_() for k, v in phi.items()}
    grads = torch.autograd.grad(task.inner_loss(theta, theta, sx, sy), list(theta.values()))
    for (key, value), grad in zip(phi.items(), grads):
        torch.testing.assert_close(adapted[key], value - config["inner_lr"] * grad)


# -- verify ----------------------------------------------------------------------------------
def test_a_shortened_trial_is_the_start_of_the_full_one(registry):
    # reptile anneals its meta step size over the trial: the shortened run must keep that
    task_cls, method_cls = registry.task("sinusoid").cls, registry.method("reptile").cls
    config = small_config(task_cls, method_cls, iterations=30, curve_points=3,
                          test_episodes=20, val_episodes=5)
    full = run_trial(method_cls, task_cls, config)
    start = run_trial(method_cls, task_cls, config, stop_after=10)
    assert start["metrics"] == {} and start["timing"]["iterations"] == 10
    strip = [{k: v for k, v in p.items() if k != "train_time_s"} for p in full["curve"]]
    assert [{k: v for k, v in p.items() if k != "train_time_s"}
            for p in start["curve"]] == strip[:2]


def test_verify_reproduces_records_bit_for_bit_and_catches_changes(tmp_path):
    out = tmp_path / "results"
    records = run_records(out, "maml,reptile")
    assert all(r["provenance"]["command"].startswith("benchsuite run --methods maml,reptile")
               for r in records.values())

    quick = cli("verify", out, "--sample", "all", "--quick")
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert "2 records checked: 2 identical" in quick.stdout
    assert "first 10 of 40 iterations (quick)" in quick.stdout
    assert "not checked: the test metrics" in quick.stdout
    full = cli("verify", out, "-q")
    assert full.returncode == 0 and "all 40 iterations" in full.stdout, full.stdout
    assert "1 records checked: 1 identical" in full.stdout   # one per task by default

    maml_path = next(out.rglob("maml/*.json"))
    rewrite(maml_path, lambda r: r["curve"][1].update(val_mse=r["curve"][1]["val_mse"] * 1.001))
    changed = cli("verify", out, "--sample", "all", "--quick", "-q")
    assert changed.returncode == 1
    assert "MISMATCH: same environment" in changed.stdout and "curve[10].val_mse" in changed.stdout

    # another environment: numbers need only agree within the CI
    rewrite(maml_path, lambda r: r["provenance"].update(torch="0.0-elsewhere"))
    elsewhere = cli("verify", out, "--sample", "all", "--quick", "-q")
    assert elsewhere.returncode == 0, elsewhere.stdout
    assert "within CI" in elsewhere.stdout and "torch 0.0-elsewhere here" in elsewhere.stdout
    rewrite(maml_path, lambda r: r["curve"][1].update(val_mse=r["curve"][1]["val_mse"] + 50))
    assert "outside the CI" in cli("verify", out, "--sample", "all", "--quick", "-q").stdout

    rewrite(maml_path, lambda r: r["code"].update(method="0" * 16))  # an edit: its id no
    edited = cli("verify", out, "--sample", "all", "--quick", "-q")  # longer fits
    assert edited.returncode == 1 and "MISMATCH: its id is not the hash" in edited.stdout

    def older_code(record):  # what a record written by older code holds: its id fits
        record["id"] = trial_id(record["method"], record["task"], record["config"],
                                record["code"])
    rewrite(maml_path, older_code)
    stale = cli("verify", out, "--sample", "all", "--quick", "-q")
    assert stale.returncode == 1 and "stale: method code changed" in stale.stdout


@pytest.mark.parametrize("args, message", [
    (["verify", "no-such-folder"], "does not exist"),
    (["verify", "{empty}"], "no finished trial records"),
    (["verify", "{empty}", "--sample", "some"], "unknown --sample 'some'"),
])
def test_verify_usage_errors_exit_2_with_one_line(tmp_path, args, message):
    result = cli(*(a.format(empty=tmp_path) for a in args))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_committed_reference_records_verify():
    """The committed leaderboard's records re-run to the same numbers (--quick, named on
    purpose: up to each record's first learning-curve point, one record per task; whole
    trials would take hours)."""
    if SHARED_OMNIGLOT.is_dir():
        os.environ.setdefault("BENCHSUITE_DATA", str(SHARED_OMNIGLOT))
    result = cli("verify", REFERENCE, "--quick")
    assert result.returncode == 0, result.stdout + result.stderr
    tasks = {p.parent.parent.name for p in REFERENCE.rglob("*.json")}
    assert f"{len(tasks)} records checked" in result.stdout
    assert "failed" not in result.stdout and "(quick)" in result.stdout
    if SHARED_OMNIGLOT.is_dir():
        assert "skipped" not in result.stdout


# -- published numbers in the report ---------------------------------------------------------
def test_report_sets_published_numbers_beside_ours(tmp_path):
    out = tmp_path / "results"
    records = run_records(out, "maml", iterations=8)
    maml = next(iter(records.values()))["metrics"]
    far, near = maml["mse"] + 10 * maml["mse_ci95"] + 1, maml["mse_at_10_steps"]
    (out / "published.toml").write_text(f"""
[[result]]
task = "sinusoid"
method = "maml"
metric = "mse_at_1_steps"
value = {far}
source = "Far et al."
config = {{ iterations = 8 }}

[[result]]
task = "sinusoid"
method = "maml"
metric = "mse_at_10_steps"
value = {near}
source = "Near et al."
margin = 10.0

[[result]]
task = "sinusoid"
method = "maml"
metric = "mse_at_10_steps"
value = {near}
source = "Tight et al."
margin = 0.001

[[result]]
task = "sinusoid"
method = "maml"
metric = "mse_at_5_steps"
value = 1.0
source = "Other protocol"
config = {{ iterations = 70000 }}

[[result]]
task = "sinusoid"
method = "maml"
""")
    result = cli("report", out, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    assert "lacks ['metric', 'value', 'source']" in result.stderr
    board = (tmp_path / "report" / "LEADERBOARD.md").read_text()
    sources = ("Far et al.", "Near et al.", "Tight et al.", "Other protocol")
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in board.splitlines()
            if any(source in line for source in sources)]
    assert [row[2].split("(")[1] for row in rows] == ["Far et al.)", "Near et al.)",
                                                      "Tight et al.)"], board
    verdicts = [row[8] for row in rows]
    assert verdicts == ["OUTSIDE", "within", "undecided"]   # the margin decides "within"
    assert float(rows[0][6]) == pytest.approx(maml["mse"] - far, rel=1e-3)
    assert abs(float(rows[1][6])) < 1e-5 * near              # ours, from float32 episodes
    assert "benchsuite run --methods maml --tasks sinusoid" in board   # the exact command
