"""Reliability: faults inside a run, stopping and resuming, code-hash invalidation, bad
records and bad input. Test-only methods and tasks live in plugin folders made here."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchsuite.cli import app
from benchsuite.storage.records import LOCK_SUFFIX, TEMPORARY_PREFIX, read_record
from benchsuite.storage.streams import is_stream

REPO = Path(__file__).resolve().parents[1]

TINY = ["--tasks", "sinusoid", "--iterations", "5", "--set", "test_episodes=20",
        "--set", "val_episodes=5", "-q"]

FAULTY_METHODS = '''
import os
import signal
import time

import torch

from benchsuite.core.contract import MetaGradient
from benchsuite.methods.maml import MAML


class Raises(MAML):
    name, aliases = "raises", ()

    def meta_gradient(self, task, phi, batch):
        raise ValueError("injected failure")


class Diverges(MAML):
    name, aliases = "diverges", ()

    def meta_gradient(self, task, phi, batch):
        return MetaGradient(super().meta_gradient(task, phi, batch).grads, float("nan"))


class HostAllocation(MAML):
    name, aliases = "host-allocation", ()

    def meta_gradient(self, task, phi, batch):
        torch.empty(2**42)  # 16 TiB: PyTorch's CPU allocator refuses at once


class PythonAllocation(MAML):
    name, aliases = "python-allocation", ()

    def meta_gradient(self, task, phi, batch):
        bytearray(2**60)


class CudaAllocation(MAML):
    name, aliases = "cuda-allocation", ()

    def meta_gradient(self, task, phi, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


class Killed(MAML):
    """What the kernel's out-of-memory killer does to a worker."""
    name, aliases = "killed", ()

    def __init__(self, config):
        os.kill(os.getpid(), signal.SIGKILL)


class Hangs(MAML):
    name, aliases = "hangs", ()

    def __init__(self, config):
        time.sleep(3600)
'''

HOLDING_METHOD = '''
import time
from pathlib import Path

from benchsuite.methods.maml import MAML

HOLD = Path(__file__).with_name("hold")
REACHED = Path(__file__).with_name("reached")


class Holds(MAML):
    """MAML that waits while a `hold` file exists beside it."""
    name, aliases = "holds", ()

    def meta_gradient(self, task, phi, batch):
        REACHED.touch()
        while HOLD.exists():
            time.sleep(0.05)
        return super().meta_gradient(task, phi, batch)
'''

FEW_SHOT_TASK = '''
import json
from dataclasses import dataclass
from pathlib import Path

from benchsuite.core.contract import META_INIT, Task


class FewShot(Task):
    """A classification task reading `classes.json` (class name -> examples) from its data
    root; only its planning-time checks are used here."""
    name, kind, metric, higher_is_better = "fewshot", META_INIT, "accuracy", True

    @dataclass
    class Settings:
        ways: int = 5
        """Classes per episode."""
        shots: int = 1
        """Support examples per class."""
        query: int = 15
        """Query examples per class."""
        data_root: str = "DATA_ROOT"
        """The folder holding classes.json."""

    defaults = {"inner_steps": 1, "inner_lr": 0.4, "meta_batch": 4, "iterations": 10,
                "meta_lr": 1e-3, "eval_inner_steps": 1}

    @classmethod
    def check_config(cls, config):
        problems = super().check_config(config)
        if config["ways"] < 1:
            problems.append(f"ways must be at least 1 (got {config['ways']})")
        root = Path(config["data_root"])
        if not root.is_dir():
            problems.append(f"data_root {str(root)!r} does not exist; point it at the "
                            "folder holding classes.json")
        elif not (root / "classes.json").is_file():
            problems.append(f"data_root {str(root)!r} holds no classes.json (wrong format)")
        else:
            examples = json.loads((root / "classes.json").read_text())
            least = min(examples.values())
            if config["shots"] + config["query"] > least:
                problems.append(f"shots + query = {config['shots'] + config['query']} is "
                                f"more than the {least} examples of a class in the data")
            if config["ways"] > len(examples):
                problems.append(f"ways {config['ways']} > {len(examples)} classes in the data")
        return problems
'''


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def plugin_folder(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def records_in(out: Path) -> dict[str, dict]:
    """method -> record, checking every file under `out` is a complete, valid record (or
    the empty lock file of one, or a metric stream)."""
    files = sorted(out.rglob("*"))
    assert not [f for f in files if f.name.startswith(TEMPORARY_PREFIX)]
    return {read_record(f)["method"]: read_record(f) for f in files
            if f.is_file() and not f.name.endswith(LOCK_SUFFIX) and not is_stream(f)}


# -- faults inside a run ---------------------------------------------------------------------
def test_raising_diverging_and_out_of_memory_trials_get_their_status(tmp_path):
    plugins = plugin_folder(tmp_path / "plugins", faulty=FAULTY_METHODS)
    methods = "raises,diverges,host-allocation,python-allocation,cuda-allocation,maml"
    result = cli("run", "--plugins", plugins, "--methods", methods, "--out", tmp_path / "out",
                 "--executor", "inline", *TINY)
    assert result.exit_code == 1, result.output
    records = records_in(tmp_path / "out")
    assert {m: r["status"] for m, r in records.items()} == {
        "raises": "failed", "diverges": "diverged", "host-allocation": "oom",
        "python-allocation": "oom", "cuda-allocation": "oom", "maml": "finished"}
    assert records["raises"]["error"] == "ValueError: injected failure"
    assert "non-finite" in records["diverges"]["error"]
    assert "can't allocate memory" in records["host-allocation"]["error"]
    assert records["cuda-allocation"]["error"].startswith("CUDA out of memory")
    assert records["maml"]["metrics"]["mse_n"] == 20
    # the summary table names every trial that did not finish, with its status
    table = result.stderr.splitlines()
    assert "5 trials did not finish:" in table
    assert any("raises × sinusoid (seed 0)" in line and "failed" in line for line in table)
    assert "maml × sinusoid" not in result.stderr


def test_killed_and_overrunning_workers_are_recorded_and_the_run_goes_on(tmp_path):
    plugins = plugin_folder(tmp_path / "plugins", faulty=FAULTY_METHODS)
    started = time.monotonic()
    result = cli("run", "--plugins", plugins, "--methods", "killed,hangs", "--timeout", 2,
                 "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 60  # the hanging worker was stopped
    records = records_in(tmp_path / "out")
    assert records["killed"]["status"] == "oom"
    assert "SIGKILL" in records["killed"]["error"]
    assert records["hangs"]["status"] == "timeout"
    assert records["hangs"]["error"] == "exceeded the 2 s time limit"


def test_a_rerun_keeps_results_and_retries_failures(tmp_path):
    plugins = plugin_folder(tmp_path / "plugins", faulty=FAULTY_METHODS)
    command = ["run", "--plugins", plugins, "--methods", "raises,diverges",
               "--out", tmp_path / "out", "--executor", "inline", *TINY]
    assert cli(*command).exit_code == 1
    files = {p.parent.name: p for p in (tmp_path / "out").rglob("*.json")}
    written = {name: path.stat().st_mtime_ns for name, path in files.items()}
    time.sleep(0.01)
    again = cli(*command)
    assert again.exit_code == 1  # the grid still holds a divergence and a failure
    assert "(1 skipped: kept from earlier runs)" in again.stdout
    assert "diverged (earlier run)" in again.stderr
    assert files["diverges"].stat().st_mtime_ns == written["diverges"]
    assert files["raises"].stat().st_mtime_ns != written["raises"]


def test_a_plugin_edited_after_planning_fails_its_trial(tmp_path):
    from benchsuite.running import executors, planning
    from benchsuite.running.registry import discover

    plugins = plugin_folder(tmp_path / "plugins", toy="from benchsuite.methods.maml import MAML\n\n"
                            "class Toy(MAML):\n    name, aliases = 'toy', ()\n")
    [spec] = planning.plan(discover([plugins]), methods="toy", tasks="sinusoid", seeds=1,
                         budget="quick", device="cpu", options={"iterations": 2},
                         set_items=[], out=tmp_path / "out")
    with open(plugins / "toy.py", "a") as source:
        source.write("EDITED = True\n")
    record = executors.trial_outcome(spec)
    assert record["status"] == "failed"
    assert "method source changed since the run was planned" in record["error"]


# -- stopping and resuming -------------------------------------------------------------------
def start_run(plugins: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "benchsuite", "run", "--plugins", str(plugins),
               "--out", str(out), *TINY, *extra]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def worker_processes(pid: int) -> list[int]:
    """The running trial workers of the runner `pid`: forked by its forkserver
    (benchsuite.running.workers), or spawned by it where there is none."""
    processes = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        processes[int(stat.parent.name)] = (int(fields[1]), fields[0], command)
    servers = {p for p, (parent, _, command) in processes.items()
               if parent == pid and b"forkserver" in command}
    return [p for p, (parent, state, command) in processes.items() if state != "Z" and (
        parent in servers or parent == pid and b"spawn_main" in command)]


def is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def held_run(tmp_path: Path, *extra: str):
    """A run of maml then `holds` (seeds as given), stopped inside the first holds trial."""
    plugins = plugin_folder(tmp_path / "plugins", holding=HOLDING_METHOD)
    (plugins / "hold").touch()
    process = start_run(plugins, tmp_path / "out", "--methods", "maml,holds", *extra)
    wait_for(lambda: (plugins / "reached").exists())
    [worker] = worker_processes(process.pid)
    return plugins, process, worker


def test_sigkill_of_the_runner_then_rerun_finishes_only_the_missing_trials(tmp_path):
    plugins, process, worker = held_run(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    wait_for(lambda: not is_running(worker), seconds=10)  # the orphaned worker ends itself
    out = tmp_path / "out"
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert [read_record(p)["method"] for p in first] == ["maml"]
    assert not [p for p in out.rglob("*") if p.name.startswith(TEMPORARY_PREFIX)]

    (plugins / "hold").unlink()
    # the same command again, reporting whether the local executor imported Ray
    rerun = subprocess.run(
        [sys.executable, "-c", "import atexit, sys; atexit.register(lambda: print('ray "
         "imported:', 'ray' in sys.modules)); from benchsuite.cli import app; app()",
         "run", "--plugins", str(plugins), "--out", str(out), *TINY,
         "--methods", "maml,holds"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "2 trials: 2 finished (1 skipped: kept from earlier runs)" in rerun.stdout
    assert "ray imported: False" in rerun.stdout
    assert {p: p.stat().st_mtime_ns for p in first} == first
    records = [read_record(p) for p in out.rglob("*.json")]
    assert sorted((r["method"], r["status"]) for r in records) == [
        ("holds", "finished"), ("maml", "finished")]


@pytest.mark.parametrize("stop, whole_group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c", "kill"])
def test_sigint_and_sigterm_stop_cleanly_and_say_what_was_saved(tmp_path, stop, whole_group):
    """Ctrl-C reaches the whole process group; `kill` reaches the runner only."""
    _, process, worker = held_run(tmp_path)
    if whole_group:
        os.killpg(process.pid, stop)
    else:
        os.kill(process.pid, stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + stop
    assert (f"stopped by {stop.name}: 1 records written by this run (1 finished), 1 trials "
            "not run") in stderr
    assert "Traceback" not in stderr
    assert not is_running(worker)
    assert list(records_in(tmp_path / "out")) == ["maml"]


# -- code-hash invalidation ------------------------------------------------------------------
def test_editing_one_method_reruns_only_its_trials_and_marks_its_old_rows(tmp_path):
    plugins = plugin_folder(tmp_path / "plugins", toy="from benchsuite.methods.maml import MAML\n\n"
                            "class Toy(MAML):\n    name, aliases = 'toy', ()\n")
    out, reports = tmp_path / "out", tmp_path / "reports"

    def run(seeds):
        result = cli("run", "--plugins", plugins, "--methods", "maml,toy", "--seeds", seeds,
                     "--out", out, "--executor", "inline", *TINY)
        assert result.exit_code == 0, result.output
        return result.stdout

    def leaderboard_rows():
        assert cli("report", out, "--out", reports, "--plugins", plugins).exit_code == 0
        lines = (reports / "LEADERBOARD.md").read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("| rank"))
        main_table = lines[start + 2:lines.index("", start)]  # below the header and rule
        return [line for line in main_table if line.startswith("| ")]

    run(2)
    before = {p: read_record(p) for p in out.rglob("*.json")}
    with open(plugins / "toy.py", "a") as source:
        source.write("EDITED = True  # a statement: comments alone are no edit\n")
    assert sorted(row.split("|")[2].strip() for row in leaderboard_rows()) == [
        "maml", "toy (older code)"]

    assert "2 trials: 2 finished (1 skipped: kept from earlier runs)" in run(1)
    assert {p: read_record(p) for p in before} == before  # nothing overwritten
    [new_toy] = [read_record(p) for p in out.rglob("*.json") if p not in before]
    [old_toy] = [r for r in before.values() if r["method"] == "toy" and r["seed"] == 0]
    assert new_toy["seed"] == 0
    assert new_toy["code"]["method"] != old_toy["code"]["method"]
    assert new_toy["code"]["task"] == old_toy["code"]["task"]
    assert sorted(row.split("|")[2].strip() for row in leaderboard_rows()) == [
        "maml", "toy (older code in 1 of 2 trials)"]

    assert "4 trials: 4 finished (3 skipped: kept from earlier runs)" in run(2)
    assert sorted(row.split("|")[2].strip() for row in leaderboard_rows()) == ["maml", "toy"]


# -- bad records -----------------------------------------------------------------------------
def test_report_skips_every_bad_record_with_a_one_line_warning(tmp_path):
    out = tmp_path / "results"
    assert cli("run", "--methods", "maml", "--out", out, "--executor", "inline",
               *TINY).exit_code == 0
    [good_path] = out.rglob("*.json")
    good = read_record(good_path)

    def variant(**changes):
        return json.dumps({**good, **changes})

    bad = {
        "truncated.json": good_path.read_text()[:200],
        "future.json": variant(schema_version=99),
        "package.json": json.dumps({"name": "not-a-record", "version": "1.0"}),
        "list.json": "[1, 2, 3]",
        "metrics-string.json": variant(metrics="oops", id="a"),
        "seed-string.json": variant(seed="0", id="b"),
        "seed-bool.json": variant(seed=True, id="c"),
        "curve-numbers.json": variant(curve=[1, 2], id="d"),
        "status-unknown.json": variant(status="great", id="e"),
        "objective-broken.json": variant(objective={"metric": 3}, id="f"),
        "metric-missing.json": variant(metrics={"accuracy": 1.0}, id="g"),
        "no-episodes.json": variant(metrics={**good["metrics"], "mse_n": 0}, id="h"),
    }
    for name, text in bad.items():
        (out / name).write_text(text)
    duplicate = good_path.with_name("zz-copy.json")  # read after the original
    duplicate.write_text(good_path.read_text())
    (out / "latin1.json").write_bytes(b'{"name": "\xff\xfe"}')
    (out / "folder.json").mkdir()
    (good_path.parent / f"{TEMPORARY_PREFIX}half.json").write_text('{"schema_ver')

    result = cli("report", out, "--out", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    skipped = sorted(Path(w.split()[2].rstrip(":")).name for w in warnings)
    assert skipped == sorted([*bad, "latin1.json", "folder.json", duplicate.name])
    assert all(line.startswith("warning: skipped ") for line in warnings)
    leaderboard = (tmp_path / "reports" / "LEADERBOARD.md").read_text()
    assert "from 1 trial records" in leaderboard
    assert "| maml " in leaderboard


# -- bad input -------------------------------------------------------------------------------
@pytest.fixture
def few_shot_plugins(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "classes.json").write_text(json.dumps({f"class{i}": 20 for i in range(6)}))
    (tmp_path / "empty").mkdir()
    return plugin_folder(tmp_path / "plugins",
                         fewshot=FEW_SHOT_TASK.replace("DATA_ROOT", str(data)))


FEW_SHOT = ["--methods", "maml", "--tasks", "fewshot"]
BAD_INPUT = {
    "unknown method": (["--methods", "nosuch"], "unknown method 'nosuch'; valid methods:"),
    "unknown task": (["--tasks", "nosuch"], "unknown task 'nosuch'; valid tasks:"),
    "--set without =": (["--set", "shots"], "write key=value or name.key=value"),
    "--set empty key": (["--set", "=3"], "empty key"),
    "--set unknown key": (["--set", "shotz=3"], "unknown --set key 'shotz'; valid keys:"),
    "--set unknown scope": (["--set", "nosuch.shots=3"], "is not a method or task in this run"),
    "--set key not in scope": (["--tasks", "sinusoid,quadratic", "--set", "quadratic.shots=3"],
                               "unknown --set key 'shots' for quadratic"),
    "--set wrong type": (["--set", "shots=many"], "'many' is not a int"),
    "--set a command-line key": (["--set", "seed=3"], "seed is chosen with --seeds"),
    "zero seeds": (["--seeds", "0"], "--seeds must be at least 1"),
    "negative seeds": (["--seeds", "-2"], "--seeds must be at least 1 and at most 1000 (got -2)"),
    "zero shots": (["--set", "shots=0"], "shots must be at least 1 (got 0)"),
    "negative iterations": (["--iterations", "-1"], "iterations must be at least 0"),
    "zero meta-batch": (["--meta-batch", "0"], "meta_batch must be at least 1"),
    "negative step size": (["--set", "inner_lr=-0.1"], "inner_lr must be positive"),
    "incompatible pair": (["--methods", "fomaml", "--tasks", "quadratic"],
                          "fomaml cannot run on quadratic"),
    "unknown budget": (["--budget", "huge"], "unknown --budget 'huge'; valid: quick, paper"),
    "unknown device": (["--device", "tpu"], "unknown --device 'tpu'; valid: auto, cpu, cuda"),
    "unknown executor": (["--executor", "slurm"], "unknown --executor 'slurm'; valid:"),
    "zero timeout": (["--timeout", "0"], "--timeout must be a positive number"),
    "timeout inline": (["--executor", "inline", "--timeout", "5"], "--timeout needs a worker"),
    "address without ray": (["--address", "auto"], "--address is for --executor ray"),
    "malformed address": (["--executor", "ray", "--address", "head"], "write HOST:PORT"),
    "nobody at address": (["--executor", "ray", "--address", "127.0.0.1:1"],
                          "no Ray head answers there"),
    "missing plugin folder": (["--plugins", "/no/such/folder"], "does not exist"),
    "zero ways": ([*FEW_SHOT, "--set", "ways=0"], "ways must be at least 1 (got 0)"),
    "too many shots": ([*FEW_SHOT, "--set", "shots=10"],
                       "shots + query = 25 is more than the 20 examples"),
    "missing data root": ([*FEW_SHOT, "--set", "data_root={tmp}/nowhere"], "does not exist"),
    "wrong data format": ([*FEW_SHOT, "--set", "data_root={tmp}/empty"],
                          "holds no classes.json"),
}


@pytest.mark.parametrize("args, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, few_shot_plugins,
                                                            args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "out"
    defaults = ["--tasks", "sinusoid"] if "--tasks" not in args else []
    result = cli("run", "--plugins", few_shot_plugins, "--out", out, *defaults, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert not out.exists()


def test_cuda_requested_without_cuda_is_a_usage_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = cli("run", "--device", "cuda", "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 2
    assert "this machine has no CUDA device" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_path_that_is_a_file_is_a_usage_error(tmp_path):
    out = tmp_path / "out"
    out.write_text("keep me")
    result = cli("run", "--out", out, *TINY)
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert out.read_text() == "keep me"
