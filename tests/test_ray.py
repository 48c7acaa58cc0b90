"""The Ray executor against a local Ray instance (2 CPUs): the same grid gives the same
records as the local executor, lost workers are retried or recorded, and the CLI drives an
existing cluster by address."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchsuite.running import executors, planning, ray_executor, runner
from benchsuite.running.registry import discover
from benchsuite.storage.records import read_record

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]
TINY_SETTINGS = ["test_episodes=20", "val_episodes=5"]

CRASHING_METHODS = '''
import os
import signal
import time
from pathlib import Path

from benchsuite.methods.maml import MAML

CRASHED = Path(__file__).with_name("crashed")


def kill_the_ray_worker():
    """Kill the Ray worker that runs this trial's process, as a lost node would: the
    trial's process is forked by the worker's forkserver, whose parent is the worker."""
    forkserver = os.getppid()
    worker = int(Path(f"/proc/{forkserver}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(worker, signal.SIGKILL)
    time.sleep(60)  # this process ends once it notices its parent is gone


class CrashesOnce(MAML):
    name, aliases = "crashes-once", ()

    def __init__(self, config):
        super().__init__(config)
        if not CRASHED.exists():
            CRASHED.touch()
            kill_the_ray_worker()


class CrashesAlways(MAML):
    name, aliases = "crashes-always", ()

    def __init__(self, config):
        kill_the_ray_worker()


class ReadsEnvironment(MAML):
    """Fails unless the driver's BENCHSUITE_ variables reached the worker."""
    name, aliases = "reads-environment", ()

    def __init__(self, config):
        super().__init__(config)
        assert os.environ.get("BENCHSUITE_PROBE") == "set by the driver"
'''


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def grid(out: Path, methods: str = "maml,fomaml", plugins=()):
    return planning.plan(discover(plugins), methods=methods, tasks="sinusoid", seeds=1,
                       budget="quick", device="cpu", options={"iterations": 5},
                       set_items=TINY_SETTINGS, out=out, device_here=False)


def without_clock_readings(record: dict) -> dict:
    """The parts of a record that do not depend on when or where it ran."""
    curve = [{k: v for k, v in point.items() if k != "train_time_s"}
             for point in record["curve"]]
    return {**{k: record[k] for k in ("id", "method", "task", "seed", "status", "config",
                                      "code", "metrics", "error", "objective")},
            "curve": curve}


def test_ray_and_local_executors_give_the_same_records(ray_cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    runner.execute(grid(local), executors.LocalExecutor(None), force=False, quiet=True)
    summary = runner.execute(grid(remote), ray_executor.RayExecutor(None, None), force=False,
                             quiet=True)
    assert summary.counts() == "2 finished"
    local_files = sorted(p.relative_to(local) for p in local.rglob("*.json"))
    assert local_files == sorted(p.relative_to(remote) for p in remote.rglob("*.json"))
    assert len(local_files) == 2
    for name in local_files:
        on_ray, here = read_record(remote / name), read_record(local / name)
        assert without_clock_readings(on_ray) == without_clock_readings(here)  # bit-identical


def test_lost_workers_are_retried_then_recorded_and_settings_travel(ray_cluster, tmp_path,
                                                                   monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crashing.py").write_text(textwrap.dedent(CRASHING_METHODS))
    monkeypatch.setenv("BENCHSUITE_PROBE", "set by the driver")  # after the cluster started
    specs = grid(tmp_path / "out", "crashes-once,crashes-always,reads-environment", [plugins])
    summary = runner.execute(specs, ray_executor.RayExecutor(None, None, max_retries=1),
                             force=False, quiet=True)
    records = {read_record(p)["method"]: read_record(p)
               for p in (tmp_path / "out").rglob("*.json")}
    assert records["crashes-once"]["status"] == "finished"  # its retry ran to the end
    assert records["crashes-always"]["status"] == "failed"
    assert records["crashes-always"]["error"].startswith("lost by Ray after 1 retries")
    assert records["reads-environment"]["status"] == "finished"
    assert len(summary.rows) == 3


def test_cuda_trials_ask_ray_for_one_gpu(tmp_path):
    [spec] = planning.plan(discover(), methods="maml", tasks="sinusoid", seeds=1, budget="quick",
                         device="cuda", options={}, set_items=[], out=tmp_path,
                         device_here=False)
    assert ray_executor.ray_resources(spec) == {"num_cpus": 1, "num_gpus": 1}
    [spec] = grid(tmp_path, "maml")
    assert ray_executor.ray_resources(spec) == {"num_cpus": 1, "num_gpus": 0}


def test_cli_runs_a_grid_on_an_existing_cluster(ray_cluster, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "benchsuite", "run", "--executor", "ray", "--address",
         ray_cluster, "--methods", "maml", "--tasks", "sinusoid", "--iterations", "5",
         "--set", TINY_SETTINGS[0], "--set", TINY_SETTINGS[1], "--out", str(out), "-q"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 trials: 1 finished" in result.stdout
    [record] = [read_record(p) for p in out.rglob("*.json")]
    assert record["status"] == "finished" and record["metrics"]["mse_n"] == 20
