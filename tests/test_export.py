"""`benchsuite export`: the committed records as flat tables, checked against the records."""

import importlib.util
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.test_suite import cli

RECORDS = REPO / "results" / "reference" / "hypercleaning"


def stored():
    return [json.loads(p.read_text()) for p in sorted(RECORDS.rglob("*.json"))]


def check_tables(trials: pd.DataFrame, curves: pd.DataFrame) -> None:
    records = stored()
    assert len(trials) == len(records)
    assert len(curves) == sum(len(r["curve"]) for r in records)
    for column in ("id", "method", "seed", "status", "config.inner_lr", "metric.accuracy",
                   "timing.total_s", "memory.peak_bytes", "provenance.git_commit",
                   "protocol.kind"):
        assert column in trials, column
    assert not [c for c in trials if c.startswith("metric.episode_scores")]
    by_id = trials.set_index("id")
    for record in records:
        row = by_id.loc[record["id"]]
        assert row["metric.accuracy"] == pytest.approx(record["metrics"]["accuracy"])
        assert row["timing.total_s"] == pytest.approx(record["timing"]["total_s"])
        assert row["config.inner_lr"] == pytest.approx(record["config"]["inner_lr"])
        assert row["provenance.command"] == record["provenance"]["command"]
        assert row["status"] == record["status"]
    first = records[0]
    points = curves[curves.id == first["id"]].sort_values("iteration")
    assert points.iteration.tolist() == [p["iteration"] for p in first["curve"]]
    assert points.val_accuracy.tolist() == pytest.approx([p["val_accuracy"]
                                                          for p in first["curve"]])


def test_export_csv_writes_one_row_per_trial_and_per_curve_point(tmp_path):
    result = cli("export", RECORDS, "--curves", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["curves.csv", "trials.csv"]
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    check_tables(trials, pd.read_csv(tmp_path / "out" / "curves.csv"))
    # a list-valued setting is JSON text, readable back as the list
    lists = [c for c in trials if trials[c].astype(str).str.startswith("[").all()]
    assert all(isinstance(json.loads(v), list) for c in lists for v in trials[c])


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None,
                    reason="pyarrow not installed (pip install 'benchsuite[parquet]')")
def test_export_parquet_round_trips(tmp_path):
    result = cli("export", RECORDS, "--format", "parquet", "--curves", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    check_tables(pd.read_parquet(tmp_path / "trials.parquet"),
                 pd.read_parquet(tmp_path / "curves.parquet"))


def test_export_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    unknown = cli("export", RECORDS, "--format", "xlsx", "--out", out)
    assert unknown.returncode == 2 and unknown.stderr.strip().count("\n") == 0
    assert "unknown --format 'xlsx'; valid: csv, parquet" in unknown.stderr
    missing = cli("export", tmp_path / "nowhere", "--out", out)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = cli("export", empty, "--out", out)
    assert none.returncode == 2 and "no trial records" in none.stderr
    # parquet without pyarrow: the import fails as it would where pyarrow is not installed
    code = ("import sys; sys.modules['pyarrow'] = None; sys.argv = ['benchsuite'] + "
            "sys.argv[1:]; from benchsuite.cli import app; app()")
    result = subprocess.run([sys.executable, "-c", code, "export", str(RECORDS), "--format",
                             "parquet", "--out", str(out)], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("error: --format parquet needs pyarrow: pip install "
                                     "'benchsuite[parquet]' (or use --format csv)")
    assert not out.exists()
