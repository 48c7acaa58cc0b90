"""`benchsuite tune`: the equal-budget grid, the choice on validation scores, the tuned
protocol file and its reading back. Tiny sinusoid trials, run inline, in temporary
folders (the checkout's protocols/ is never touched)."""

import math
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchsuite.cli import app
from benchsuite.core.contract import HYPERPARAMETER, META_INIT
from benchsuite.running import planning, tune
from benchsuite.running import protocols as protocol_files
from benchsuite.storage.results import read_records

TINY = ["--set", "sinusoid.iterations=20", "--set", "curve_points=2",
        "--set", "val_episodes=5", "--set", "test_episodes=5"]
KEPT_TABLE = '[anil]\nsource = "by hand"\nbudget = 4\n\n[anil.settings]\ninner_lr = 0.5\n'


def invoke(*args):
    return CliRunner().invoke(app, ["tune", *map(str, args)])


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One tuning of fomaml × sinusoid; the tuned file already holds another method's."""
    base = tmp_path_factory.mktemp("tune")
    root, out = base / "protocols", base / "records"
    (root / "tuned").mkdir(parents=True)
    (root / "tuned" / "sinusoid.toml").write_text(KEPT_TABLE)
    result = invoke("--methods", "fomaml", "--tasks", "sinusoid", *TINY, "--executor",
                    "inline", "--out", out, "--protocols-dir", root, "-q")
    assert result.exit_code == 0, result.output
    table = tomllib.loads((root / "tuned" / "sinusoid.toml").read_text())
    return root, out, result, table


def test_grid_has_the_budget_around_the_untuned_step_sizes(tuned):
    _, out, _, table = tuned
    fomaml = table["fomaml"]
    assert fomaml["budget"] == tune.TUNE_BUDGET == 4
    expected = [(0.01, 0.001), (0.01, 0.003), (0.0025, 0.001), (0.0025, 0.003)]
    assert [(p["inner_lr"], p["meta_lr"]) for p in fomaml["grid"]] == [
        pytest.approx(e, rel=1e-12) for e in expected]
    records, skipped = read_records(out)
    assert not skipped and len(records) == 4
    assert sorted((r["config"]["inner_lr"], r["config"]["meta_lr"]) for r in records) == [
        pytest.approx(e, rel=1e-12) for e in sorted(expected)]
    assert {r["config"]["iterations"] for r in records} == {20}
    assert fomaml["source"] == ("benchsuite tune: best of 4 configurations on 5 validation "
                                "episodes after 20 iterations, 1 seed(s)")


def test_choice_is_the_best_validation_score_on_disk(tuned):
    _, out, result, table = tuned
    fomaml = table["fomaml"]
    records, _ = read_records(out)
    scores = {}
    for record in records:
        assert record["objective"] == {"metric": "mse", "higher_is_better": False}
        last = max(record["curve"], key=lambda point: point["iteration"])
        scores[record["config"]["inner_lr"], record["config"]["meta_lr"]] = last["val_mse"]
    assert fomaml["scores"] == [scores[p["inner_lr"], p["meta_lr"]] for p in fomaml["grid"]]
    best = min(scores, key=scores.get)
    assert (fomaml["settings"]["inner_lr"], fomaml["settings"]["meta_lr"]) == best
    assert set(fomaml["settings"]) == {"inner_lr", "meta_lr"}
    assert fomaml["metric"] == "val_mse" and fomaml["iterations"] == 20
    assert "← chosen" in result.stdout and "sinusoid.toml" in result.stdout


def test_tuned_file_round_trips_into_a_planned_trial(tuned, registry, tmp_path):
    root, _, _, table = tuned
    loaded = protocol_files.load(root)
    protocol = loaded.tuned["fomaml", "sinusoid"]
    assert protocol.budget == 4 and dict(protocol.settings) == table["fomaml"]["settings"]
    assert loaded.tuned["anil", "sinusoid"].settings == {"inner_lr": 0.5}  # kept
    (spec,) = planning.plan(registry, methods="fomaml", tasks="sinusoid", seeds=1,
                          budget="quick", device="cpu", options={}, set_items=[],
                          out=tmp_path, protocols=loaded)
    assert spec.config["inner_lr"] == table["fomaml"]["settings"]["inner_lr"]
    assert spec.config["meta_lr"] == table["fomaml"]["settings"]["meta_lr"]
    assert spec.protocol["label"] == "tuned (budget 4)"


def test_rerun_resumes_from_the_records(tuned):
    root, out, _, table = tuned
    before = sorted(p.stat().st_mtime_ns for p in Path(out).rglob("*.json"))
    result = invoke("--methods", "fomaml", "--tasks", "sinusoid", *TINY, "--executor",
                    "inline", "--out", out, "--protocols-dir", root, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.stat().st_mtime_ns for p in Path(out).rglob("*.json")) == before
    again = tomllib.loads((root / "tuned" / "sinusoid.toml").read_text())
    assert again["fomaml"]["grid"] == table["fomaml"]["grid"]  # centred on the untuned run
    assert again["fomaml"]["settings"] == table["fomaml"]["settings"]


@pytest.mark.parametrize("method, reason", [("fomaml", "paper protocol"),
                                            ("scratch", "floor")])
def test_refused_pairs_exit_2_and_write_nothing(tmp_path, method, reason):
    root, out = tmp_path / "protocols", tmp_path / "records"
    (root / "paper").mkdir(parents=True)
    (root / "paper" / "fomaml.toml").write_text('[sinusoid]\nsource = "x"\n')
    result = invoke("--methods", method, "--tasks", "sinusoid", *TINY, "--executor",
                    "inline", "--out", out, "--protocols-dir", root)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not (root / "tuned").exists()


def test_unknown_method_exits_2(tmp_path):
    result = invoke("--methods", "nope", "--tasks", "sinusoid", "--protocols-dir", tmp_path,
                    "--dry-run")
    assert result.exit_code == 2 and "unknown method 'nope'" in result.stderr


def test_implicit_methods_tune_the_proximal_weight_where_it_is_their_inner_problem():
    config = {"inner_lr": 0.1, "meta_lr": 1e-3, "proximal_lambda": 2.0}
    keys, grid = tune.grid_for(config, META_INIT)
    assert keys == ("inner_lr", "proximal_lambda")
    assert grid == [{"inner_lr": 0.1, "proximal_lambda": 2.0},
                    {"inner_lr": 0.1, "proximal_lambda": 10.0},
                    {"inner_lr": 0.025, "proximal_lambda": 2.0},
                    {"inner_lr": 0.025, "proximal_lambda": 10.0}]
    # DARTS on hyper-cleaning has the key but no proximal problem: its step sizes are tuned
    keys, grid = tune.grid_for(config, HYPERPARAMETER)
    assert keys == ("inner_lr", "meta_lr")
    assert [point["meta_lr"] for point in grid] == pytest.approx([1e-3, 3e-3] * 2)


def test_darts_tunes_its_meta_step_on_hypercleaning(registry, tmp_path):
    jobs = tune.plan_tuning(registry, methods="darts", tasks="hypercleaning", seeds=1,
                            budget="quick", device="cpu", options={}, set_items=[],
                            out=tmp_path, protocols=protocol_files.load())
    assert [job.keys for job in jobs] == [("inner_lr", "meta_lr")]


def test_metasgd_tunes_the_range_its_learned_step_sizes_start_in(registry, tmp_path):
    """Meta-SGD does not use inner_lr: its budget scales α's initial range instead."""
    jobs = tune.plan_tuning(registry, methods="metasgd", tasks="logistic", seeds=1,
                            budget="quick", device="cpu", options={}, set_items=[],
                            out=tmp_path, protocols=protocol_files.load())
    (job,) = jobs
    assert job.keys == ("alpha_init_low", "alpha_init_high", "meta_lr")
    low, high = job.base["alpha_init_low"], job.base["alpha_init_high"]
    assert [p["alpha_init_low"] for p in job.grid] == pytest.approx([low, low, low / 4, low / 4])
    assert [p["alpha_init_high"] for p in job.grid] == pytest.approx(
        [high, high, high / 4, high / 4])
    assert [spec.config["alpha_init_high"] for point in job.specs for spec in point] == (
        pytest.approx([high, high, high / 4, high / 4]))


def test_source_counts_one_validation_episode_in_the_singular():
    """Hyper-cleaning validates on one episode (its validation set)."""
    job = tune.TuneJob("maml", "hypercleaning", {"iterations": 100, "val_episodes": 1},
                       ("inner_lr", "meta_lr"), [{"inner_lr": 1.0, "meta_lr": 0.1}], [[]],
                       "accuracy", True, scores=[0.9], choice=0)
    table = tune.tuned_table(job, seeds=1, command="c", date="d", commit="x")
    assert table["source"] == ("benchsuite tune: best of 4 configurations on 1 validation "
                               "episode after 100 iterations, 1 seed(s)")
    assert table["settings"] == {"inner_lr": 1.0, "meta_lr": 0.1}


def test_choose_skips_non_finite_and_keeps_the_first_of_ties():
    nan, inf = math.nan, math.inf
    assert tune.choose([nan, 2.0, 1.0, 1.0], higher_is_better=False) == 2
    assert tune.choose([1.0, 3.0, 3.0, inf], higher_is_better=True) == 1
    assert tune.choose([-inf, 0.5, 0.5, 0.1], higher_is_better=False) == 3
    assert tune.choose([nan, nan, inf, -inf], higher_is_better=False) is None


def test_tuned_protocol_files_round_trip_and_keep_other_tables(tmp_path):
    """write_tuned (tomli-w) writes what tomllib and protocols.load read back exactly."""
    table = {"source": 'a "quoted" \\ line\nnext\ttab é \x7f', "budget": 4,
             "flag": False, "scores": [1.0, math.inf, -math.inf, 1e-300],
             "grid": [{"inner_lr": 0.1, "x y": 3}], "eval_steps": (1, 5),
             "settings": {"inner_lr": 0.1 + 0.2, "meta_optimizer": "sgd"}}
    tune.write_tuned(tmp_path, "quadratic", {"other": {**table, "budget": 3}})
    path = tune.write_tuned(tmp_path, "quadratic", {"m-1": table})
    read = tomllib.loads(path.read_text())
    assert read == {"other": {**table, "budget": 3, "eval_steps": [1, 5]},
                    "m-1": {**table, "eval_steps": [1, 5]}}
    loaded = protocol_files.load(tmp_path).tuned["m-1", "quadratic"]
    assert loaded.budget == 4 and loaded.settings == {"inner_lr": 0.1 + 0.2,
                                                     "meta_optimizer": "sgd"}
    tune.write_tuned(tmp_path, "ridge", {"m": {**table, "scores": [math.nan]}})
    assert math.isnan(tomllib.loads((tmp_path / "tuned" / "ridge.toml").read_text())[
        "m"]["scores"][0])
