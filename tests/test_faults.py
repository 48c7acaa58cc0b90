"""Fault injection: each guarantee of docs/records.md ("What a record guarantees") against
the faults that would break it. Concurrent writers (two processes; two runs, one through
Ray); runs killed (SIGKILL) or stopped (SIGINT) at random moments of a grid, then resumed;
write errors mid-grid (a full disk, a read-only or forbidden folder, a path through a
file, a vanished results folder), injected by failing the system calls for the results
folder only; read-only output folders at planning; tampered and truncated records; bad
input of every class. Trials are tiny and run inline unless a process is the point."""

import errno
import importlib.util
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchsuite.running import runner
from benchsuite.storage.records import (
    DIVERGED,
    FAILED,
    FINISHED,
    LOCK_SUFFIX,
    NOT_APPLICABLE,
    OOM,
    TEMPORARY_PREFIX,
    TIMEOUT,
    read_record,
    write_record,
)
from benchsuite.storage.streams import is_stream
from tests.test_reliability import (
    REPO,
    TINY,
    cli,
    plugin_folder,
    wait_for,
    worker_processes,
)

FAULT_METHODS = '''
import os
import shutil
import sys
import time
from pathlib import Path

from benchsuite.methods.maml import MAML


class Late(MAML):
    """MAML; in a process whose BENCHSUITE_TEST_WAIT_FOR names a results folder, it waits inside
    the trial (touching `reached` beside this file) until a record is in that folder,
    then hangs: the run that times out while another finishes the same trial."""
    name, aliases = "late", ()

    def meta_gradient(self, task, phi, batch):
        folder = os.environ.get("BENCHSUITE_TEST_WAIT_FOR")
        if folder:
            Path(__file__).with_name("reached").touch()
            while not list(Path(folder).rglob("seed*.json")):
                time.sleep(0.05)
            time.sleep(3600)
        return super().meta_gradient(task, phi, batch)


class Exits(MAML):
    name, aliases = "exits", ()

    def meta_gradient(self, task, phi, batch):
        sys.exit(0)


class Vanishes(MAML):
    """Removes the folder FAULTS_REMOVE names when built: the results folder vanishing."""
    name, aliases = "vanishes", ()

    def __init__(self, config):
        super().__init__(config)
        shutil.rmtree(os.environ["FAULTS_REMOVE"])
'''

GRID = ["--methods", "maml,fomaml", "--seeds", "2", *TINY, "--executor", "inline"]


def planned_paths(out: Path, *args: str, plugins: Path | None = None) -> set[Path]:
    """The record paths `benchsuite run ARGS` plans (its dry run)."""
    result = cli("run", "--out", out, *args, "--dry-run",
                 *(["--plugins", plugins] if plugins else []))
    assert result.exit_code == 0, result.output
    return {Path(line.rsplit("-> ", 1)[1]) for line in result.stdout.splitlines() if "-> " in line}


def stored(out: Path) -> dict[Path, bytes]:
    """Every record file under `out` with its bytes; no temporary file may be there."""
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(LOCK_SUFFIX)
             and not is_stream(p)]
    assert not [p for p in files if p.name.startswith(TEMPORARY_PREFIX)], files
    for path in files:
        read_record(path)  # a complete, valid record
    return {p: p.read_bytes() for p in files}


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


@pytest.fixture(scope="module")
def a_record(tmp_path_factory) -> dict:
    """A finished record of a tiny trial (run once for this file's tests)."""
    out = tmp_path_factory.mktemp("base")
    assert cli("run", "--methods", "maml", "--out", out, *TINY,
               "--executor", "inline").exit_code == 0
    [path] = out.rglob("*.json")
    return read_record(path)


# -- one writer rule ---------------------------------------------------------------------------
WRITER_RULE = [  # stored, offered, force -> which one the file holds afterwards
    (FINISHED, TIMEOUT, False, "stored"), (FINISHED, FAILED, True, "stored"),
    (FINISHED, DIVERGED, True, "stored"), (FINISHED, OOM, False, "stored"),
    (DIVERGED, TIMEOUT, False, "stored"), (DIVERGED, FINISHED, False, "offered"),
    (TIMEOUT, FINISHED, False, "offered"), (FAILED, DIVERGED, False, "offered"),
    (TIMEOUT, FAILED, False, "offered"),  # the latest of two failures
    (FINISHED, FINISHED, False, "stored"), (FINISHED, FINISHED, True, "offered"),
    (DIVERGED, DIVERGED, False, "stored"), (NOT_APPLICABLE, FAILED, True, "stored"),
]


@pytest.mark.parametrize("old, new, force, kept", WRITER_RULE)
def test_a_record_is_replaced_only_by_one_at_least_as_complete(tmp_path, a_record, old, new,
                                                               force, kept):
    path = tmp_path / "r" / "seed0-x.json"
    variants = {}
    for name, status in (("stored", old), ("offered", new)):
        record = dict(a_record, status=status, error=None if status == FINISHED else name)
        if status != FINISHED:
            record.update(metrics={}, curve=[])
        variants[name] = record
    write_record(path, variants["stored"])
    outcome = write_record(path, variants["offered"], force=force)
    assert read_record(path)["error"] == variants[kept]["error"]
    assert outcome.kept == (kept == "stored")
    if outcome.kept:
        assert outcome.describe().startswith(f"kept the {old} record at {path}")
        assert f"this run's {new} result of the same trial was not stored" in outcome.describe()


def _hammer(path: str, record: dict, times: int, start) -> None:
    start.wait()
    for _ in range(times):
        write_record(Path(path), record)


def test_two_processes_writing_one_record_never_lose_the_finished_one(tmp_path, a_record):
    """A process writing `timeout` records as fast as it can, while another writes the
    finished one in the middle: without the lock (compare, then replace) the timeout
    read before the finished write lands after it."""
    path = tmp_path / "r" / "seed0-x.json"
    timeout = dict(a_record, status=TIMEOUT, error="slow", metrics={}, curve=[])
    context = multiprocessing.get_context("fork")
    start = context.Event()
    writers = [context.Process(target=_hammer, args=(str(path), record, times, start))
               for record, times in ((timeout, 400), (a_record, 1), (timeout, 400))]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    assert read_record(path) == json.loads(json.dumps(a_record))
    assert sorted(p.name for p in path.parent.iterdir()) == [
        f".{path.name}{LOCK_SUFFIX}", path.name]


EXECUTORS = ["local", pytest.param("ray", marks=pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed"))]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_timing_out_never_replaces_the_record_another_run_finished(tmp_path, executor):
    """Two runs plan the same trial; the one whose trial times out ends after the other
    stored it finished, keeps that record and says so. With the local executor, its
    worker is sent SIGINT and SIGTERM meanwhile, and runs on to its time limit."""
    plugins = plugin_folder(tmp_path / "plugins", faults=FAULT_METHODS)
    out = tmp_path / "out"
    late = subprocess.Popen(
        [sys.executable, "-m", "benchsuite", "run", "--plugins", str(plugins), "--methods",
         "late", "--out", str(out), *TINY, "--timeout", "8", "--executor", executor],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "BENCHSUITE_TEST_WAIT_FOR": str(out)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # the late run has planned once it makes the results folder: the other runs then
        wait_for(lambda: out.exists() or late.poll() is not None)
        on_time = cli("run", "--plugins", plugins, "--methods", "late", "--out", out, *TINY,
                      "--executor", "inline")
        assert on_time.exit_code == 0, on_time.output
        [path] = out.rglob("*.json")
        finished = path.read_bytes()
        wait_for(lambda: (plugins / "reached").exists() or late.poll() is not None)
        assert late.poll() is None, late.communicate()
        if executor == "local":  # a worker ignores the stop signals meant for its runner
            [worker] = worker_processes(late.pid)
            os.kill(worker, signal.SIGINT)
            os.kill(worker, signal.SIGTERM)
        stdout, stderr = late.communicate(timeout=300)
    finally:
        if late.poll() is None:
            os.killpg(late.pid, signal.SIGKILL)
    assert late.returncode == 0, stderr  # the grid is complete: its trial is finished
    assert f"note: kept the finished record at {path}" in stderr
    # a timeout: the worker ran on through the signals until its limit killed it
    assert "this run's timeout result of the same trial was not stored" in stderr
    assert "1 trials: 1 finished" in stdout
    assert stored(out) == {path: finished}


# -- stopping and resuming ---------------------------------------------------------------------
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "sigint"])
def test_a_run_stopped_at_a_random_moment_resumes_to_exactly_the_grid(tmp_path, stop):
    out = tmp_path / "out"
    expected = planned_paths(out, *GRID)
    assert len(expected) == 4
    seed = random.randrange(10**6)
    chance = random.Random(seed)
    after, delay = chance.randrange(4), chance.uniform(0, 0.6)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchsuite", "run", "--out", str(out), *GRID], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    # from the moment the runner has planned (it makes the results folder)
    wait_for(lambda: (out.exists() and len(list(out.rglob("seed*.json"))) >= after)
             or process.poll() is not None)
    time.sleep(delay)
    os.killpg(process.pid, stop)
    _, stderr = process.communicate(timeout=120)
    context = f"random seed {seed}: stopped after {after} records + {delay:.2f} s\n{stderr}"
    if stop == signal.SIGINT:
        assert process.returncode in (0, 130), context
        assert "Traceback" not in stderr, context
        before = stored(out) if out.exists() else {}  # SIGINT leaves no temporary file
    else:
        before = {p: p.read_bytes() for p in out.rglob("seed*.json")
                  if not p.name.startswith(TEMPORARY_PREFIX)}
    assert set(before) <= expected, context

    resumed = cli("run", "--out", out, *GRID)
    assert resumed.exit_code == 0, resumed.output
    kept = f" ({len(before)} skipped: kept from earlier runs)" if before else ""
    assert f"4 trials: 4 finished{kept}" in resumed.stdout, context
    after_resume = stored(out)  # temporary files of a killed writer are gone too
    assert set(after_resume) == expected, context
    assert {p: after_resume[p] for p in before} == before, context  # nothing re-run


# -- write errors mid-grid ---------------------------------------------------------------------
class FailingFolder:
    """Makes the system calls that write under `folder` fail with `code` once the first
    record has landed there (`times` failures, then they work again; None: for good)."""

    def __init__(self, monkeypatch, folder: Path, code: int, times: int | None = None):
        self.folder, self.code, self.times, self.armed = folder, code, times, False
        self.real_open, self.real_replace = os.open, os.replace
        monkeypatch.setattr(os, "open", self.open)
        monkeypatch.setattr(os, "replace", self.replace)

    def fails(self, path) -> bool:
        if not (self.armed and Path(path).is_relative_to(self.folder)):
            return False
        if self.times is None:
            return True
        self.times -= 1
        return self.times >= 0

    def error(self, path) -> OSError:
        return OSError(self.code, os.strerror(self.code), str(path))

    def open(self, path, *args, **kwargs):
        # a full disk takes the open and fails the write: here, the rename
        if self.code != errno.ENOSPC and self.fails(path):
            raise self.error(path)
        return self.real_open(path, *args, **kwargs)

    def replace(self, source, target, *args, **kwargs):
        if self.code == errno.ENOSPC and self.fails(target):
            raise self.error(target)
        self.real_replace(source, target, *args, **kwargs)
        if Path(target).is_relative_to(self.folder):
            self.armed = True


HINTS = {errno.ENOSPC: "free space on that disk", errno.EROFS: "the file system is read-only",
         errno.EACCES: "fix the permissions", errno.ENOTDIR: "a part of the path is a file"}


@pytest.mark.parametrize("code", HINTS, ids=[errno.errorcode[c] for c in HINTS])
def test_a_write_error_mid_grid_keeps_every_record_and_says_where(tmp_path, monkeypatch,
                                                                  code):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    grid = ["--methods", "maml,fomaml", *TINY, "--executor", "inline"]
    expected = planned_paths(out, *grid)
    FailingFolder(monkeypatch, out, code)
    result = cli("run", "--out", out, *grid)
    assert result.exit_code == 74, result.output
    line = one_error_line(result.stderr)
    [fallback] = (tmp_path / "home").glob(".cache/benchsuite/unsaved/*")
    assert line.startswith(f"error: 1 records could not be written to {out} ({out}/")
    assert os.strerror(code) in line and HINTS[code] in line
    assert f"1 are in {fallback} (copy them back with `cp -rn {fallback}/. {out}/`" in line
    assert "2 trials: 2 finished" in result.stdout
    monkeypatch.undo()
    here, elsewhere = stored(out), stored(fallback)
    assert len(here) == 1 and len(elsewhere) == 1
    assert set(here) | {out / p.relative_to(fallback) for p in elsewhere} == expected


def test_a_write_that_fails_once_is_retried_into_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    grid = ["--methods", "maml,fomaml", *TINY, "--executor", "inline"]
    FailingFolder(monkeypatch, out, errno.ENOSPC, times=1)
    result = cli("run", "--out", out, *grid)
    assert result.exit_code == 0, result.output
    assert "warning: 1 record writes failed and succeeded when retried" in result.stderr
    assert set(stored(out)) == planned_paths(out, *grid)
    assert not stored(tmp_path / "home")  # the fallback copy went once it was in place


def test_a_record_no_folder_takes_is_printed_not_dropped(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(runner, "fallback_folders", lambda: [tmp_path / "file" / "unsaved"])
    out = tmp_path / "out"
    FailingFolder(monkeypatch, out, errno.EROFS)
    result = cli("run", "--out", out, "--methods", "maml,fomaml", *TINY, "--executor", "inline")
    assert result.exit_code == 74
    assert "1 could be stored nowhere and follow on stdout as JSON lines" in one_error_line(
        result.stderr)
    [printed] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert printed["method"] == "fomaml" and printed["status"] == FINISHED


def test_a_vanished_results_folder_is_not_recreated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    plugins = plugin_folder(tmp_path / "plugins", faults=FAULT_METHODS)
    out = tmp_path / "out"
    monkeypatch.setenv("FAULTS_REMOVE", str(out))
    result = cli("run", "--plugins", plugins, "--methods", "maml,vanishes", "--out", out,
                 *TINY, "--executor", "inline")
    assert result.exit_code == 74, result.output
    line = one_error_line(result.stderr)
    assert f"{out}: the results folder vanished; a folder of the path vanished" in line
    assert not out.exists()
    [saved] = stored(tmp_path / "home")
    assert read_record(saved)["method"] == "vanishes"


# -- output folders checked at planning --------------------------------------------------------
def test_unwritable_output_folders_are_refused_before_anything_runs(tmp_path, monkeypatch,
                                                                    a_record):
    results = tmp_path / "results"
    write_record(results / "sinusoid" / "maml" / "seed0-x.json", a_record)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: the read-only file system's answer
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: not (
            Path(path) == locked and mode & os.W_OK) and real_access(path, mode, **kw))
    for command in (["run", *TINY, "--out", locked / "new"], ["report", results, "--out", locked],
                    ["sweep", "--methods", "maml", "--tasks", "quadratic", "--out", locked],
                    ["tune", "--methods", "fomaml", "--tasks", "sinusoid", "--out", locked]):
        result = cli(*command)
        assert result.exit_code == 2, (command, result.output)
        assert f"{str(locked)!r} is not writable" in one_error_line(result.stderr)
        assert list(locked.iterdir()) == []


# -- tampered and truncated records ------------------------------------------------------------
def _halve_metric(r):
    r["metrics"]["mse"] /= 2


def _widen_interval(r):
    r["metrics"]["mse_ci95"] *= 1.01


def _edit_episode(r):
    r["metrics"]["episode_scores"]["1"] = "A" + r["metrics"]["episode_scores"]["1"][1:]


def _move_curve(r):
    r["curve"][-1]["val_mse"] += 1e-9


def _drop_curve_point(r):
    r["curve"].pop()


TAMPERING = {  # what is changed -> (change, what the verdict line says)
    "metric": (_halve_metric, "MISMATCH: same environment, 1 of"),
    "interval": (_widen_interval, "mse_ci95 stored"),
    "episode scores": (_edit_episode, "episode_scores[1] stored"),
    "curve point": (_move_curve, "curve[5].val_mse stored"),
    "curve length": (_drop_curve_point, "curve[5].val_mse stored None"),
    "status diverged": (lambda r: r.update(status=DIVERGED),
                        "status diverged but it holds a finished trial's measurements"),
    "status failed": (lambda r: r.update(status=FAILED, metrics={}, curve=[]),
                      "skipped: a failed record"),
    "config": (lambda r: r["config"].update(inner_lr=0.02), "its id is not the hash"),
    "code identity": (lambda r: r["code"].update(method="0" * 16), "its id is not the hash"),
    "seed": (lambda r: r.update(seed=7), "seed 7 but its config says 0"),
}


@pytest.mark.parametrize("change, says", TAMPERING.values(), ids=TAMPERING.keys())
def test_verify_fails_a_record_whose_printed_numbers_were_changed(tmp_path, a_record, change,
                                                                   says):
    record = json.loads(json.dumps(a_record))
    change(record)
    write_record(tmp_path / "sinusoid" / "maml" / "seed0-x.json", record, force=True)
    result = cli("verify", tmp_path, "--sample", "all", "-q")
    rows = [line for line in result.stdout.splitlines() if line.startswith("sinusoid ")]
    assert len(rows) == 1 and says in rows[0], result.stdout
    if "skipped" in says:  # a failed record holds nothing to check, and says why
        assert result.exit_code == 0
    else:
        assert result.exit_code == 1 and "1 failed verification" in result.stdout


def test_an_untampered_record_verifies_and_quick_says_what_it_skipped(tmp_path, a_record):
    write_record(tmp_path / "sinusoid" / "maml" / "seed0-x.json", a_record)
    full = cli("verify", tmp_path, "-q")
    assert full.exit_code == 0 and "identical" in full.stdout, full.stdout
    quick = cli("verify", tmp_path, "--quick", "-q")
    assert quick.exit_code == 0 and "(quick)" in quick.stdout
    assert ("not checked: the test metrics, the per-episode scores, the curve after its "
            "first point, diverged records") in quick.stdout


def test_a_truncated_record_is_skipped_by_readers_and_replaced_by_a_rerun(tmp_path):
    out = tmp_path / "out"
    grid = ["--methods", "maml", *TINY, "--executor", "inline"]
    [path] = planned_paths(out, *grid)
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 2, "id": "')
    report = cli("report", out, "--out", tmp_path / "reports")
    assert report.exit_code == 0 and f"skipped {path}: unreadable JSON" in report.stderr
    result = cli("run", "--out", out, *grid)
    assert result.exit_code == 0 and "1 trials: 1 finished" in result.stdout
    assert read_record(path)["status"] == FINISHED


def test_records_take_the_umask_and_killed_writers_leave_nothing(tmp_path):
    out = tmp_path / "out"
    grid = ["--methods", "maml", *TINY, "--executor", "inline"]
    [path] = planned_paths(out, *grid)
    path.parent.mkdir(parents=True)
    leftover = path.with_name(f"{TEMPORARY_PREFIX}{path.name}-dead.json")  # a killed writer's
    leftover.write_text('{"half')
    previous = os.umask(0o002)
    try:
        result = cli("run", "--out", out, *grid)
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert "note: removed 1 temporary files that killed writers left" in result.stderr
    assert path.stat().st_mode & 0o777 == 0o664
    assert not leftover.exists()


# -- bad input -----------------------------------------------------------------------------------
BAD_INPUT = {
    "infinite timeout": (["run", "--timeout", "inf"], "--timeout must be a positive number"),
    "nan timeout": (["run", "--timeout", "nan"], "--timeout must be a positive number"),
    "huge timeout": (["run", "--timeout", "1e12"], "at most 604800"),
    "huge seed count": (["run", "--seeds", "1000000000"], "--seeds must be at least 1 and at most"),
    "huge grid": (["run", "--seeds", "1000", "--methods", "all", "--tasks", "all"],
                  "split it into several runs"),
    "huge jobs": (["run", "--jobs", "100000"], "per core of this machine"),
    "cpu index": (["run", "--device", "cpu:1"], "the CPU has no index"),
    "negative warmup": (["run", "--set", "warmup=-1"], "warmup must be at least 0"),
    "zero curve points": (["run", "--set", "curve_points=0"], "curve_points must be at least 1"),
    "negative eval steps": (["run", "--set", "eval_steps=2,-1"], "eval_steps must hold step"),
    "out inside a file": (["run", "--out", "{file}/sub"], "is inside"),
    "sweep out a file": (["sweep", "--out", "{file}"], "is inside"),
    "report out a file": (["report", "{tmp}", "--out", "{file}"], "is a file"),
    "tune out a file": (["tune", "--methods", "fomaml", "--tasks", "sinusoid", "--out",
                         "{file}"], "is a file"),
    "sweep negative seed": (["sweep", "--seed", "-1"], "--seed must be at least 0"),
    "tune seeds": (["tune", "--methods", "fomaml", "--tasks", "sinusoid", "--seeds", "0"],
                   "--seeds must be at least 1"),
    "not a number": (["run", "--seeds", "many"], "Invalid value for '--seeds'"),
    "unknown option": (["verify", "--full"], "No such option: --full"),
    "missing option": (["tune"], "Missing option '--methods'"),
    "extra argument": (["report", "a", "b"], "unexpected extra argument"),
}


@pytest.mark.parametrize("args, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_of_every_class_exits_2_with_one_line(tmp_path, args, message):
    (tmp_path / "file").write_text("keep")
    args = [a.format(file=tmp_path / "file", tmp=tmp_path) for a in args]
    defaults = ["--tasks", "sinusoid"] if args[0] == "run" and "--tasks" not in args else []
    out = [] if "--out" in args or args[0] not in ("run", "sweep") else ["--out", tmp_path / "o"]
    result = cli(*args, *defaults, *out)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert (tmp_path / "file").read_text() == "keep"


def test_missing_ray_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = cli("run", "--executor", "ray", *TINY, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "--executor ray needs Ray, which is not installed" in one_error_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_two_plugins_with_one_name_are_refused(tmp_path):
    plugins = plugin_folder(tmp_path / "plugins", copy="from benchsuite.methods.maml import "
                            "MAML\n\n\nclass Copy(MAML):\n    name, aliases = 'maml', ()\n")
    for command in (["run", "--methods", "maml", *TINY, "--out", tmp_path / "out"], ["list"]):
        result = cli(*command, "--plugins", plugins)
        assert result.exit_code == 2
        line = one_error_line(result.stderr)
        assert "two plugins are named 'maml'" in line and str(plugins / "copy.py") in line
    assert not (tmp_path / "out").exists()


def test_a_method_named_twice_through_an_alias_is_planned_once(tmp_path):
    assert len(planned_paths(tmp_path / "out", "--methods", "maml,rhg,maml", *TINY)) == 1


def test_sys_exit_in_a_plugin_fails_its_trial(tmp_path):
    """In this process (--executor inline), where it would end the run; a worker process
    catches it the same way (benchsuite.running.executors.trial_outcome)."""
    plugins = plugin_folder(tmp_path / "plugins", faults=FAULT_METHODS)
    out = tmp_path / "out"
    result = cli("run", "--plugins", plugins, "--methods", "exits,maml", *TINY, "--out", out,
                 "--executor", "inline")
    assert result.exit_code == 1, result.output
    records = {read_record(p)["method"]: read_record(p) for p in stored(out)}
    assert records["exits"]["status"] == FAILED
    assert records["exits"]["error"] == "the trial called sys.exit(0)"
    assert records["maml"]["status"] == FINISHED  # the run went on
