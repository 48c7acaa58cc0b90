"""`benchsuite run --jobs N`: trials side by side in fresh worker processes, with the same
records as one at a time, faults kept to their own trial, and stopping that stops all."""

import os
import signal
import subprocess
import sys

import pytest

from benchsuite.storage.records import read_record
from tests.test_reliability import (
    FAULTY_METHODS,
    REPO,
    cli,
    is_running,
    plugin_folder,
    records_in,
    wait_for,
    worker_processes,
)

SIDE_BY_SIDE_METHODS = '''
import os
import time
from pathlib import Path

from benchsuite.methods.maml import MAML

HERE = Path(__file__).parent


class Meets(MAML):
    """MAML whose first meta-step waits up to 60 s for a second worker to reach its own."""
    name, aliases = "meets", ()

    def meta_gradient(self, task, phi, batch):
        (HERE / f"met-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while len(list(HERE.glob("met-*"))) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("alone")
            time.sleep(0.05)
        return super().meta_gradient(task, phi, batch)


class Holds(MAML):
    """MAML that says it has started (one file per worker), then waits while `hold` exists."""
    name, aliases = "holds", ()

    def meta_gradient(self, task, phi, batch):
        (HERE / f"reached-{os.getpid()}").touch()
        while (HERE / "hold").exists():
            time.sleep(0.05)
        return super().meta_gradient(task, phi, batch)
'''

SMALL = ["--tasks", "sinusoid", "--iterations", "20", "--set", "test_episodes=20",
         "--set", "val_episodes=5", "-q"]



def measured(record: dict) -> dict:
    """What a trial computed: metrics and the curve without its wall-clock times."""
    curve = [{k: v for k, v in point.items() if k != "train_time_s"}
             for point in record["curve"]]
    return {"status": record["status"], "metrics": record["metrics"], "curve": curve}


def test_two_jobs_give_the_records_of_one(tmp_path, monkeypatch):
    # the same thread count in both runs (1 job would otherwise get PyTorch's default)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    runs = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        result = cli("run", "--methods", "maml,fomaml", "--seeds", 1, "--jobs", jobs,
                     "--out", out, *SMALL)
        assert result.exit_code == 0, result.output
        runs[jobs] = {path.relative_to(out): read_record(path) for path in out.rglob("*.json")}
    assert len(runs[1]) == 2 and set(runs[1]) == set(runs[2])  # same files (trial ids)
    for path, record in runs[1].items():
        assert measured(runs[2][path]) == measured(record), path
        assert record["provenance"]["jobs"] == 1
        assert runs[2][path]["provenance"]["jobs"] == 2
        assert runs[2][path]["provenance"]["torch_threads"] == 1
        provenance = runs[2][path]["provenance"]
        assert provenance["started_at"] < provenance["ended_at"]


def test_two_jobs_run_side_by_side(tmp_path):
    """Each `meets` trial waits, in its meta-step, for the other: one at a time, the first
    would fail ("alone")."""
    plugins = plugin_folder(tmp_path / "plugins", side_by_side=SIDE_BY_SIDE_METHODS)
    result = cli("run", "--plugins", plugins, "--methods", "meets", "--seeds", 2,
                 "--jobs", 2, "--out", tmp_path / "out", *SMALL[:2], "--iterations", 2,
                 *SMALL[4:])
    assert result.exit_code == 0, result.output
    assert len(list(plugins.glob("met-*"))) == 2  # two worker processes


def test_a_killed_or_hanging_trial_leaves_the_others_running(tmp_path):
    plugins = plugin_folder(tmp_path / "plugins", faults=FAULTY_METHODS)
    result = cli("run", "--plugins", plugins, "--methods", "killed,hangs,maml", "--jobs", 2,
                 "--timeout", 3, "--out", tmp_path / "out", *SMALL)
    assert result.exit_code == 1, result.output
    records = records_in(tmp_path / "out")
    assert {m: r["status"] for m, r in records.items()} == {
        "killed": "oom", "hangs": "timeout", "maml": "finished"}
    assert records["hangs"]["error"] == "exceeded the 3 s time limit"


def test_sigterm_stops_every_worker_and_keeps_finished_records(tmp_path):
    """Two maml trials finish side by side, then two holds trials wait until stopped."""
    plugins = plugin_folder(tmp_path / "plugins", side_by_side=SIDE_BY_SIDE_METHODS)
    (plugins / "hold").touch()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchsuite", "run", "--plugins", str(plugins), "--methods",
         "maml,holds", "--seeds", "2", "--jobs", "2", "--out", str(tmp_path / "out"), *SMALL],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: len(list(plugins.glob("reached-*"))) == 2, seconds=120)
    workers = worker_processes(process.pid)
    assert len(workers) == 2
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert ("stopped by SIGTERM: 2 records written by this run (2 finished), 2 trials not "
            "run") in stderr
    assert "Traceback" not in stderr
    assert not [w for w in workers if is_running(w)]
    assert list(records_in(tmp_path / "out")) == ["maml"]


@pytest.mark.parametrize("extra, message", [
    (["--jobs", "0"], "error: --jobs must be at least 1 (got 0)"),
    (["--jobs", "2", "--executor", "inline"], "error: --jobs is for --executor local"),
    (["--jobs", "2", "--executor", "ray"], "error: --jobs is for --executor local"),
])
def test_bad_jobs_stop_at_planning(tmp_path, extra, message):
    result = cli("run", "--methods", "maml", "--out", tmp_path / "out", *SMALL, *extra)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
