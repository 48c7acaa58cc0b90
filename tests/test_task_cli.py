"""Data roots through the command line: missing data stops planning with exit code 2 and
writes nothing; the data root reaches worker processes but not the trial identity."""

import json
import os
import subprocess
import sys

import pytest

from benchsuite.blocks.data import DATA_ROOT_VARIABLE
from tests.conftest import REPO
from tests.test_task_data import write_miniimagenet, write_omniglot


def benchsuite(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(DATA_ROOT_VARIABLE, None)
    return subprocess.run([sys.executable, "-m", "benchsuite", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("task, expected", [("omniglot", "images_background/<alphabet>"),
                                            ("miniimagenet", "mini-imagenet-cache-train.pkl")])
@pytest.mark.parametrize("root_exists", [False, True])
def test_missing_data_exits_2_naming_the_files_and_writes_nothing(tmp_path, task, expected,
                                                                  root_exists):
    root = tmp_path / "data"
    if root_exists:
        root.mkdir()
    result = benchsuite("run", "--methods", "maml", "--tasks", task, "--data-root", str(root),
                        "--out", str(tmp_path / "results"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    message = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and expected in message[0] and str(root) in message[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["data"] if root_exists else [])
    assert not root_exists or list(root.iterdir()) == []


def test_data_root_is_not_part_of_the_trial_identity(registry, tmp_path, monkeypatch):
    from benchsuite.running.planning import plan

    ids = []
    for name in ("here", "there"):
        write_miniimagenet((tmp_path / name).mkdir() or tmp_path / name)
        monkeypatch.setenv(DATA_ROOT_VARIABLE, str(tmp_path / name))
        specs = plan(registry, methods="maml", tasks="miniimagenet", seeds=1, budget="quick",
                     device="cpu", options={}, set_items=[], out=tmp_path / "results")
        assert str(tmp_path) not in json.dumps(specs[0].config)
        ids.append(specs[0].trial_id)
    assert ids[0] == ids[1]


def test_run_reads_the_data_root_in_its_worker_process(tmp_path):
    write_omniglot(tmp_path / "data", characters=5, drawings=4)
    result = benchsuite("run", "--methods", "maml", "--tasks", "omniglot", "--data-root",
                        str(tmp_path / "data"), "--iterations", "2", "--meta-batch", "2",
                        "--set", "filters=4", "--set", "query=3", "--set", "ways=3",
                        "--set", "test_episodes=3", "--set", "val_episodes=2", "-q",
                        "--out", str(tmp_path / "results"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (record_path,) = (tmp_path / "results").rglob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "finished"
    assert 0 <= record["metrics"]["accuracy"] <= 1
