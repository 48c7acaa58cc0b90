"""Grid files (benchsuite.running.gridfile): `benchsuite run --config FILE` plans what the
same options and --set items on the command line plan, checks values as the command line
does, and the packaged grids are the reference grids the committed records were run with."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from benchsuite.cli import app
from benchsuite.running import gridfile, planning
from tests.conftest import REPO, SHARED_OMNIGLOT


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "benchsuite", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or REPO, env=env, timeout=600)


def dry_run_lines(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line.split("  ->")[0] for line in result.stdout.splitlines() if "->" in line]


GRID = """
methods = ["maml", "implicit-cg"]
tasks = "quadratic,ridge"
seeds = 2
iterations = 7

[set]
curve_points = 4

[task.ridge]
iterations = 9

[method.implicit-cg]
iterations = 11
cg_steps = 3
"""


def test_a_grid_file_plans_what_the_command_line_plans(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    by_file = cli("run", "--config", grid, "--dry-run", "--out", tmp_path / "r")
    by_line = cli("run", "--methods", "maml,implicit-cg", "--tasks", "quadratic,ridge",
                  "--seeds", "2", "--iterations", "7", "--set", "curve_points=4",
                  "--set", "ridge.iterations=9", "--set", "implicit-cg.iterations=11",
                  "--set", "implicit-cg.cg_steps=3", "--dry-run", "--out", tmp_path / "r")
    lines = dry_run_lines(by_file)
    assert lines == dry_run_lines(by_line) and len(lines) == 8
    # the method's table wins over the task's; the file's paths and ids are the same
    assert "implicit-cg × ridge (seed 0)  [11 iterations" in lines[6]
    assert by_file.stdout == by_line.stdout
    # an option on the command line wins over the file's
    assert len(dry_run_lines(cli("run", "--config", grid, "--seeds", "1", "--dry-run"))) == 4


def test_a_method_the_command_line_leaves_out_drops_its_table(tmp_path):
    # `--methods maml` narrows the file's selection: [method.implicit-cg] no longer applies
    # (a reference grid re-run for some of its methods), and the plan is the command line's
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    by_file = cli("run", "--config", grid, "--methods", "maml", "--dry-run",
                  "--out", tmp_path / "r")
    by_line = cli("run", "--methods", "maml", "--tasks", "quadratic,ridge", "--seeds", "2",
                  "--iterations", "7", "--set", "curve_points=4", "--set",
                  "ridge.iterations=9", "--dry-run", "--out", tmp_path / "r")
    assert dry_run_lines(by_file) == dry_run_lines(by_line)
    assert len(dry_run_lines(by_file)) == 4


@pytest.mark.parametrize("text, message", [
    ('seeds = "two"', "bad seeds 'two'"),
    ("colour = 1", "unknown option 'colour'"),
    ('methods = "maml"\ntasks = "quadratic"\n[method.maml]\ninner_lr = -1.0',
     "inner_lr must be positive (got -1.0)"),
    ('methods = "maml"\ntasks = "quadratic"\n[task.maml]\ninner_lr = 1.0',
     "'maml' is not a task; run `benchsuite list`"),
    ('methods = "maml"\ntasks = "quadratic"\n[method.nosuch]\ninner_lr = 1.0',
     "'nosuch' is not a method; run `benchsuite list`"),
    ('methods = "maml"\ntasks = "quadratic"\n[set]\ninner_lr = "fast"',
     "setting [set] inner_lr = 'fast' is not of the type of its default 0.2"),
    ('methods = "maml"\ntasks = "quadratic"\n[set]\nseed = 3', "seed is chosen with --seeds"),
    ("methods = [", "is not valid TOML"),
])
def test_a_bad_grid_file_is_one_line_and_exit_2(tmp_path, text, message):
    from typer.testing import CliRunner

    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    result = CliRunner().invoke(app, ["run", "--config", str(grid), "--out",
                                      str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_run_without_a_selection_runs_the_demo_grid(tmp_path):
    lines = dry_run_lines(cli("run", "--dry-run", cwd=tmp_path))
    assert lines == dry_run_lines(cli("run", "--config", "demo", "--dry-run", cwd=tmp_path))
    assert len(lines) == 2 * 2 * 18  # every method (18) × sinusoid, quadratic × 2 seeds
    assert any(line.startswith("imaml × sinusoid (seed 0)  [50 iterations") for line in lines)
    assert any(line.startswith("scratch × sinusoid (seed 1)  [0 iterations") for line in lines)
    assert not (tmp_path / "results").exists()


def test_the_packaged_grids_plan_the_committed_reference_records(registry, monkeypatch):
    """Every trial of the reference and protocol grid files has the config of a committed
    record (the grids the records were run with, once shell lines in the noxfile), unless
    its records all ran older code (a protocol changed since: they await a re-run)."""
    if not SHARED_OMNIGLOT.is_dir():
        pytest.skip("the shared Omniglot subset is not beside the checkout")
    monkeypatch.chdir(REPO)
    command = typer.main.get_command(app).commands["run"]
    context = command.make_context("run", [])
    parameters = {p.name: p for p in command.params if p.name not in ("config", "set_")}
    names = sorted(n for n in gridfile.packaged() if n != "demo")
    assert names == ["protocol-betty-imaml", "protocol-reptile-torch",
                     "reference-hypercleaning", "reference-logistic", "reference-omniglot",
                     "reference-sinusoid"]
    for name in names:
        grid = gridfile.read(name, parameters, context)
        o = {**context.params, **grid.options}
        monkeypatch.setenv("BENCHSUITE_DATA", str(Path(o["data_root"] or ".").resolve()))
        specs = planning.plan(registry, methods=o["methods"], tasks=o["tasks"],
                              seeds=o["seeds"], budget=o["budget"], device="cpu",
                              options={"iterations": o["iterations"],
                                       "meta_batch": o["meta_batch"]},
                              overrides=grid.overrides, out=Path(o["out"]),
                              protocol=o["protocol"])
        stored: dict[tuple, list[dict]] = {}
        for path in Path(o["out"]).rglob("seed*.json"):
            record = json.loads(path.read_text())
            stored.setdefault((record["method"], record["task"], record["seed"]),
                              []).append(record)
        for spec in specs:
            config = json.loads(json.dumps(spec.config))
            records = stored[spec.method, spec.task, spec.seed]
            if config not in [record["config"] for record in records]:
                # a trial whose protocol changed since: its records ran older code, which
                # the report marks and `nox -s reference` re-runs
                assert all(record["code"] != spec.code for record in records), (
                    name, spec.label())
