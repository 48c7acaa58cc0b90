"""The suite end to end: registry, contract conformance, runner, records, resume, report."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from benchsuite.core.contract import PROBLEM_KINDS, EpisodeBatch
from benchsuite.core.seeding import generator
from benchsuite.running.registry import discover
from benchsuite.storage.records import REQUIRED_KEYS, read_record
from tests.conftest import REPO, small_config

FAST = ["--iterations", "4", "--set", "test_episodes=20", "--set", "val_episodes=5", "-q"]


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "benchsuite", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or REPO, env=env, timeout=600)


def records_in(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder)): read_record(p) for p in sorted(folder.rglob("*.json"))}


# -- registry and contract -------------------------------------------------------------------
def test_registry_finds_the_foundation_plugins(registry):
    assert {"maml", "fomaml", "reptile"} <= set(registry.canonical_methods())
    assert {"sinusoid", "quadratic"} <= set(registry.canonical_tasks())
    assert registry.method("rhg").cls is registry.method("maml").cls
    assert "rhg" not in registry.canonical_methods()


def test_plugins_folder_adds_a_method_and_lists_broken_files(tmp_path):
    (tmp_path / "sgd_init.py").write_text(textwrap.dedent("""
        from benchsuite.core.contract import META_INIT, Method
        from benchsuite.core.functional import gradient_descent, mean_objective_gradient

        class PlainInit(Method):
            name = "user-method"
            supports = frozenset({META_INIT})

            def adapt(self, task, phi, x, y, steps):
                return gradient_descent(task, task.initial_theta(phi), phi, x, y, steps,
                                        self.config["inner_lr"], first_order=True)

            def meta_gradient(self, task, phi, batch):
                def objective(phi, sx, sy, qx, qy):
                    return task.outer_loss(self.adapt(task, phi, sx, sy, 0), phi, qx, qy)
                return mean_objective_gradient(objective, phi, batch, "vmap")
    """))
    (tmp_path / "broken.py").write_text("import no_such_module\n")
    registry = discover([tmp_path])
    assert registry.method("user-method").cls.__name__ == "PlainInit"
    assert any("broken.py" in path and "no_such_module" in error
               for path, error in registry.unavailable.items())
    result = cli("run", "--plugins", tmp_path, "--methods", "user-method", "--tasks", "sinusoid",
                 "--out", tmp_path / "out", "--executor", "inline", *FAST)
    assert result.returncode == 0, result.stderr
    assert len(records_in(tmp_path / "out")) == 1


def test_every_task_honours_the_contract(registry):
    for name in registry.canonical_tasks():
        task_cls = registry.task(name).cls
        assert task_cls.kind in PROBLEM_KINDS
        config = small_config(task_cls, registry.method("maml").cls)
        if hasattr(task_cls, "check_data") and task_cls.check_data(config):
            continue  # data not on this machine; the task's own tests cover it
        task = task_cls(config, torch.device("cpu"))
        phi = task.init_meta_params(generator("contract"))
        assert all(torch.equal(phi[k], v)
                   for k, v in task.init_meta_params(generator("contract")).items())
        batch = task.sample_batch("train", 3, generator("episodes"))
        again = task.sample_batch("train", 3, generator("episodes"))
        assert isinstance(batch, EpisodeBatch)
        for first, second in zip(batch.tensors(), again.tensors()):
            assert torch.equal(first, second), f"{name}: sampling is not seeded"
        theta = task.initial_theta(phi)
        inner = task.inner_loss(theta, phi, batch.support_x[0], batch.support_y[0])
        outer = task.outer_loss(theta, phi, batch.query_x[0], batch.query_y[0])
        assert inner.dim() == 0 and outer.dim() == 0, name
        assert task.score(theta, phi, batch.query_x[0], batch.query_y[0]).dim() == 1, name


# -- runner, records, resume ---------------------------------------------------------------------
def test_run_writes_complete_records_resumes_and_reproduces(tmp_path):
    out = tmp_path / "results"
    args = ["run", "--methods", "maml,fomaml", "--tasks", "sinusoid", "--seeds", "2",
            "--out", out, *FAST]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    records = records_in(out)
    assert len(records) == 4
    for record in records.values():
        assert set(REQUIRED_KEYS) <= set(record)
        assert record["status"] == "finished"
        assert record["metrics"]["mse"] > 0 and record["metrics"]["mse_ci95"] > 0
        assert record["timing"]["per_iteration_s"] > 0 and record["timing"]["total_s"] > 0
        assert record["memory"]["peak_bytes"] >= 0
        assert record["provenance"]["torch"] == torch.__version__
        assert len(record["curve"]) >= 2
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    second = cli(*args)
    assert "4 skipped" in second.stdout
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    forced = cli(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    rerun = records_in(out)
    for key, record in records.items():
        assert rerun[key]["metrics"] == record["metrics"], "CPU runs must be bit-reproducible"
        assert rerun[key]["curve"] == [
            {**p, "train_time_s": q["train_time_s"]} for p, q in zip(record["curve"],
                                                                   rerun[key]["curve"])]


def test_methods_share_episodes_and_initialisation(tmp_path):
    """Same seed, same task: every method starts from the same φ₀ and is tested on the same
    episodes, so zero-step adaptation scores are identical across methods."""
    out = tmp_path / "results"
    result = cli("run", "--methods", "maml,fomaml", "--tasks", "sinusoid", "--out", out,
                 "--executor", "inline", "--iterations", "0", "--set", "test_episodes=20",
                 "--set", "val_episodes=5", "--set", "eval_inner_steps=0", "-q")
    assert result.returncode == 0, result.stderr
    scores = {r["method"]: r["metrics"]["mse"] for r in records_in(out).values()}
    assert scores["maml"] == scores["fomaml"]


def test_incompatible_pairs_become_na_records_under_all(tmp_path):
    out = tmp_path / "results"
    result = cli("run", "--methods", "all", "--tasks", "quadratic", "--out", out,
                 "--executor", "inline", *FAST)
    assert result.returncode == 0, result.stderr
    statuses = {r["method"]: (r["status"], r["error"]) for r in records_in(out).values()}
    assert statuses["maml"][0] == "finished"
    assert statuses["reptile"][0] == "n/a" and "hyperparameter" in statuses["reptile"][1]


@pytest.mark.parametrize("args,message", [
    (["--methods", "nosuch"], "unknown method 'nosuch'; valid methods: "),
    (["--tasks", "nosuch"], "unknown task 'nosuch'; valid tasks: "),
    (["--methods", "reptile", "--tasks", "quadratic"], "reptile cannot run on quadratic"),
    (["--set", "no_such_key=1"], "unknown --set key 'no_such_key'"),
    (["--set", "inner_steps=many"], "bad value for inner_steps"),
    (["--set", "inner_steps"], "write key=value"),
    (["--set", "meta_batch=0"], "meta_batch must be at least 1"),
    (["--seeds", "0"], "--seeds must be at least 1"),
])
def test_usage_errors_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "results"
    result = cli("run", "--tasks", "sinusoid", "--out", out, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_dry_run_prints_the_grid_and_writes_nothing(tmp_path):
    out = tmp_path / "results"
    result = cli("run", "--methods", "all", "--tasks", "sinusoid,quadratic", "--seeds", "2",
                 "--dry-run", "--out", out)
    assert result.returncode == 0
    assert "maml × sinusoid (seed 1)" in result.stdout and "dry run" in result.stdout
    assert not out.exists()


def test_list_shows_methods_tasks_and_compatibility():
    result = cli("list")
    assert result.returncode == 0
    for word in ("maml", "rhg", "fomaml", "reptile", "sinusoid", "quadratic",
                 "Compatible pairs", "hyperparameter"):
        assert word in result.stdout


# -- report ----------------------------------------------------------------------------------------
def test_report_renders_tables_and_figures_and_skips_bad_records(tmp_path):
    out, reports = tmp_path / "results", tmp_path / "reports"
    result = cli("run", "--methods", "all", "--tasks", "sinusoid,quadratic", "--out", out,
                 "--executor", "inline", *FAST)
    assert result.returncode == 0, result.stderr
    (out / "sinusoid" / "truncated.json").write_text('{"schema_version": 1, "id": ')
    (out / "foreign.json").write_text(json.dumps({"hello": "world"}))
    report = cli("report", out, "--out", reports)
    assert report.returncode == 0, report.stderr
    assert "skipped" in report.stderr and "truncated.json" in report.stderr
    text = (reports / "LEADERBOARD.md").read_text()
    assert "## sinusoid" in text and "## quadratic" in text
    assert "hypergrad_rel_error" in text
    assert "reptile: n/a" in text
    main_tables = [block for block in text.split("\n\n") if block.startswith("| rank")]
    assert len(main_tables) == 2
    for table in main_tables:
        lines = table.splitlines()
        assert len(lines[0].split("|")) - 2 <= 10        # the main table: ten columns at most
        assert all("±" in line for line in lines[2:] if line.startswith("| 1 "))
    assert "--budget paper --seeds 5 --device cuda" in text   # the paper-budget command
    figures = sorted(p.name for p in (reports / "figures").glob("*.png"))
    assert figures == ["quadratic-cost.png", "quadratic-curves.png",
                       "sinusoid-cost.png", "sinusoid-curves.png"]
    assert all((reports / "figures" / name).stat().st_size > 1000 for name in figures)
    page = (reports / "index.html").read_text()
    assert page.count("<table") == sum(1 for line in text.splitlines() if line.startswith("|--"))
    assert all(f'src="figures/{name}"' in page for name in figures)
    assert "http" not in page                                  # nothing fetched from a network
