"""benchsuite.storage.results: trial records as a pandas DataFrame, one row per trial."""

import json
import os
import subprocess
import sys
import warnings

import pandas as pd
import pytest

from benchsuite.storage import results
from benchsuite.storage.records import read_record
from tests.conftest import REPO

REFERENCE = REPO / "results" / "reference"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Four finished records of a tiny run, an n/a record, and files that are not records."""
    out = tmp_path_factory.mktemp("records")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "benchsuite", "run", "--methods", "maml,fomaml", "--tasks",
         "sinusoid", "--seeds", "2", "--iterations", "2", "--executor", "inline",
         "--set", "test_episodes=10", "--set", "val_episodes=5", "--set", "curve_points=2",
         "--out", str(out), "-q"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    finished = sorted(out.rglob("*.json"))
    assert len(finished) == 4
    not_applicable = dict(read_record(finished[0]), id="0" * 16, method="reptile",
                          status="n/a", error="reptile does not apply", metrics={},
                          curve=[], timing={}, memory={})
    (out / "sinusoid" / "reptile").mkdir()
    (out / "sinusoid" / "reptile" / "seed0-na.json").write_text(json.dumps(not_applicable))
    (out / "notes.json").write_text('{"not": "a record"}')
    (out / "sinusoid" / ".tmp-half.json").write_text("{")
    return out, finished


def test_one_row_per_record_with_flattened_parts(fresh):
    out, finished = fresh
    with pytest.warns(results.RecordSkipped, match="notes.json"):
        frame = results.load(out)
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 5
    assert sorted(frame["status"]) == ["finished"] * 4 + ["n/a"]
    # every record names its protocol: maml's paper protocol, fomaml's tuned one
    labels = frame.set_index(["method", "seed"])["protocol"].to_dict()
    assert labels[("maml", 0)] == "paper protocol" and labels[("fomaml", 1)] == "tuned (budget 4)"
    assert "protocol.source" in frame.columns
    for column in ("method", "task", "seed", "status", "metric.mse", "metric.mse_ci95",
                   "timing.total_s", "timing.per_iteration_s", "memory.peak_bytes",
                   "provenance.torch", "provenance.device", "config.inner_lr",
                   "config.iterations", "objective.metric", "path"):
        assert column in frame.columns, column
    for file in finished:
        record = read_record(file)
        row = frame.set_index("path").loc[str(file)]
        assert (row["method"], row["task"], row["seed"]) == (
            record["method"], record["task"], record["seed"])
        assert row["metric.mse"] == record["metrics"]["mse"]
        assert row["timing.total_s"] == record["timing"]["total_s"]
        assert row["memory.peak_bytes"] == record["memory"]["peak_bytes"]
        assert row["provenance.torch"] == record["provenance"]["torch"]
        assert row["config.iterations"] == 2
    na = frame[frame["status"] == "n/a"].iloc[0]
    assert na["error"] == "reptile does not apply" and pd.isna(na["metric.mse"])
    means = frame[frame["status"] == "finished"].groupby("method")["metric.mse"].mean()
    assert set(means.index) == {"maml", "fomaml"}
    for column in frame:  # every cell hashable (lists become tuples): any column groups
        frame[column].dropna().map(hash)


def test_strict_raises_and_a_single_file_loads(fresh):
    out, finished = fresh
    with pytest.raises(ValueError, match="notes.json"):
        results.load(out, strict=True)
    single = results.load(finished[0])
    assert len(single) == 1 and single.loc[0, "path"] == str(finished[0])
    with pytest.raises(FileNotFoundError):
        results.load(out / "nowhere")


def test_duplicate_trial_ids_are_counted_once(fresh, tmp_path):
    _, finished = fresh
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / finished[0].name).write_bytes(finished[0].read_bytes())
    with pytest.warns(results.RecordSkipped, match="same trial id"):
        assert len(results.load(tmp_path)) == 1


def test_curves_in_long_form(fresh):
    out, finished = fresh
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", results.RecordSkipped)
        points = results.curves(out)
    expected = sum(len(read_record(f)["curve"]) for f in finished)
    assert len(points) == expected > 0
    assert {"id", "method", "task", "seed", "iteration", "val_mse"} <= set(points.columns)


def test_committed_reference_records_load():
    valid = []
    for file in sorted(REFERENCE.rglob("*.json")):
        try:
            valid.append(read_record(file))
        except ValueError:
            pass
    assert valid, "results/reference holds committed records"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", results.RecordSkipped)
        frame = results.load(REFERENCE)
    assert len(frame) == len({r["id"] for r in valid})
    records, _ = results.read_records(REFERENCE)
    assert sorted(r["_path"] for r in records) == sorted(frame["path"])
    assert set(frame["task"]) == {r["task"] for r in valid}
    for task, rows in frame[frame["status"] == "finished"].groupby("task"):
        metric = rows["objective.metric"].iloc[0]
        assert rows[f"metric.{metric}"].notna().all(), task
        assert rows["timing.total_s"].notna().all() and rows["memory.peak_bytes"].notna().all()
