"""What a run shows and streams while it runs: the trial's training events, the metric
streams beside each record, the progress display and the results table a run ends with."""

import csv
import math
import shutil
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy import stats as scipy_stats

from benchsuite.core.errors import UsageError
from benchsuite.running import progress
from benchsuite.running.trial import Event, run_trial
from benchsuite.storage import streams
from benchsuite.storage.records import read_record
from tests.conftest import SHARED_OMNIGLOT, small_config
from tests.test_suite import cli

RUN = ["--tasks", "sinusoid", "--iterations", "12", "--set", "test_episodes=20",
       "--set", "val_episodes=5", "--set", "curve_points=3"]


def test_observing_a_trial_changes_none_of_its_numbers(registry):
    method, task = registry.method("maml").cls, registry.task("sinusoid").cls
    config = small_config(task, method, iterations=9, curve_points=3, test_episodes=20,
                          val_episodes=5)
    events: list[Event] = []
    watched = run_trial(method, task, config, observe=events.append)
    plain = run_trial(method, task, config)
    assert watched["metrics"] == plain["metrics"]
    assert [{k: v for k, v in p.items() if k != "train_time_s"} for p in watched["curve"]] == [
        {k: v for k, v in p.items() if k != "train_time_s"} for p in plain["curve"]]
    steps = [e for e in events if e.kind == "iteration"]
    assert [e.iteration for e in steps] == list(range(1, 10))
    assert all(e.iterations == 9 and e.values["step_s"] > 0 for e in steps)
    # the curve's training loss is the mean of the outer losses since the last point
    assert watched["curve"][1]["train_outer_loss"] == pytest.approx(
        statistics.fmean(e.values["outer_loss"] for e in steps[:3]))
    curve_events = [e for e in events if e.kind == "curve"]
    assert [e.values for e in curve_events] == watched["curve"]
    assert [e.elapsed_s for e in events] == sorted(e.elapsed_s for e in events)


def _rows(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_a_run_streams_every_iteration_beside_its_record(tmp_path):
    result = cli("run", "--methods", "maml", *RUN, "--out", tmp_path, "-q")
    assert result.returncode == 0, result.stderr
    [record_path] = tmp_path.rglob("*.json")
    record = read_record(record_path)
    rows = _rows(streams.csv_path(record_path))
    steps = [r for r in rows if r["outer_loss"]]
    assert [int(r["iteration"]) for r in steps] == list(range(1, 13))
    assert all(math.isfinite(float(r["outer_loss"])) for r in steps)
    curve = [r for r in rows if r["val_mse"]]
    # the stream's curve points are the record's, digit for digit
    assert [(int(r["iteration"]), float(r["val_mse"])) for r in curve] == [
        (p["iteration"], p["val_mse"]) for p in record["curve"]]
    # and the training loss the record keeps is the stream's mean since the last point
    first = [float(r["outer_loss"]) for r in steps if int(r["iteration"]) <= 4]
    assert record["curve"][1]["train_outer_loss"] == pytest.approx(statistics.fmean(first))


def test_a_stream_that_cannot_be_written_stops_and_says_why(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the record's folder should be
    stream = streams.MetricStream(blocked / "maml" / "seed0-x.json", tmp_path)
    stream.write("curve", 0, 0.0, {"val_mse": 1.0})
    assert stream.problem is not None and "stopped: Not a directory" in stream.problem
    stream.write("iteration", 1, 0.1, {"outer_loss": 1.0})  # nothing more once stopped
    stream.close()
    # a vanished results folder is never made again
    gone = tmp_path / "gone"
    stream = streams.MetricStream(gone / "t" / "maml" / "seed0-x.json", gone)
    stream.write("curve", 0, 0.0, {"val_mse": 1.0})
    assert "the results folder vanished" in stream.problem and not gone.exists()


def test_tensorboard_gets_the_same_scalars_where_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is an extra (tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli("run", "--methods", "fomaml", *RUN, "--out", tmp_path, "-q")
    assert result.returncode == 0, result.stderr
    [record_path] = tmp_path.rglob("*.json")
    board = EventAccumulator(str(streams.tensorboard_path(record_path)))
    board.Reload()
    losses = board.Scalars("outer_loss")
    rows = [r for r in _rows(streams.csv_path(record_path)) if r["outer_loss"]]
    assert [s.step for s in losses] == list(range(1, 13))
    assert [s.value for s in losses] == pytest.approx([float(r["outer_loss"]) for r in rows])
    assert len(board.Scalars("val_mse")) == len(read_record(record_path)["curve"])


def test_a_stream_survives_its_event_folder_changing_under_it(tmp_path):
    """Two runs of one trial (two processes) stream to the same paths; and a user may remove
    a stream while it is written. Neither stops the trial: at worst the stream stops."""
    pytest.importorskip("tensorboard", reason="TensorBoard is an extra (tensorboard)")
    record_path = tmp_path / "t" / "maml" / "seed0-x.json"
    first = streams.MetricStream(record_path, tmp_path)
    first.write("curve", 0, 0.0, {"val_mse": 1.0})
    second = streams.MetricStream(record_path, tmp_path)  # removes the first's events
    second.write("curve", 0, 0.0, {"val_mse": 2.0})
    for iteration in (1, 2):
        first.write("curve", iteration, 0.1, {"val_mse": 0.5})
    first.close()
    second.close()
    assert first.problem is None and second.problem is None
    # the folder itself removed under a writer: its flushes fail, and the stream stops
    third = streams.MetricStream(record_path, tmp_path)
    third.write("curve", 0, 0.0, {"val_mse": 1.0})
    shutil.rmtree(third.board_path)
    for iteration in (1, 2):
        third.write("curve", iteration, 0.1, {"val_mse": 0.5})
    third.close()
    assert "No such file or directory" in third.problem


def test_a_run_ends_with_its_results_table(tmp_path):
    result = cli("run", "--methods", "maml,scratch", *RUN, "--seeds", "2", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    # not a terminal: one line per trial on stderr, as each ends
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 4 and all("finished · mse " in line for line in lines)
    records = [read_record(p) for p in sorted((tmp_path / "sinusoid" / "maml").glob("*.json"))]
    # the headline: per seed the interquartile mean of the test episodes, then the mean
    # over seeds ± the 95% t half-width
    seeds = [r["metrics"]["mse_iqm"] for r in records]
    half = scipy_stats.t.ppf(0.975, 1) * statistics.stdev(seeds) / math.sqrt(2)
    [maml] = [line.split() for line in result.stdout.splitlines()
              if line.startswith("sinusoid  maml")]
    assert maml[:6] == ["sinusoid", "maml", "mse", "↓", f"{statistics.fmean(seeds):.4g}",
                        "±"]
    assert maml[6] == f"{half:.2g}"
    assert " ".join(maml[-2:]) == "2 finished"
    assert f"leaderboard: benchsuite report {tmp_path}" in result.stdout

    quiet = cli("run", "--methods", "maml,scratch", *RUN, "--seeds", "2", "--out", tmp_path,
                "-q")
    assert quiet.returncode == 0 and "[" not in quiet.stderr and "mse ↓" not in quiet.stdout


def test_a_run_writes_its_leaderboard_with_report(tmp_path):
    out, reports = tmp_path / "records", tmp_path / "reports"
    result = cli("run", "--methods", "maml,scratch", *RUN, "--out", out, "--report", reports)
    assert result.returncode == 0, result.stderr
    board = (reports / "LEADERBOARD.md").read_text()
    assert "| maml " in board and "| scratch " in board
    assert "<table" in (reports / "index.html").read_text()
    assert f"leaderboard: {reports / 'LEADERBOARD.md'} and {reports / 'index.html'}" \
        in result.stdout
    # the same board `benchsuite report` writes, apart from its generation time
    again = cli("report", out, "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    body = [line for line in board.splitlines() if "Generated" not in line]
    assert body == [line for line in (tmp_path / "again" / "LEADERBOARD.md").read_text()
                    .splitlines() if "Generated" not in line]


def test_a_report_folder_that_cannot_be_written_stops_the_run_before_it_starts(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("run", "--methods", "maml", *RUN, "--out", tmp_path / "records",
                 "--report", blocker / "reports")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --report") and \
        len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "records").exists()


def _spec(method: str, iterations: int):
    return SimpleNamespace(method=method, task="t", path=Path(method), label=lambda: method,
                           config={"iterations": iterations})


def test_the_eta_is_the_remaining_iterations_at_the_measured_speeds():
    a, b, c = _spec("a", 100), _spec("b", 50), _spec("c", 40)
    display = progress.RunDisplay([a, b, c], jobs=2, mode="quiet")
    assert display.eta_s() is None  # nothing measured yet
    display.events(a, [Event("iteration", i, 100, 0.1 * i, {"outer_loss": 1.0,
                                                             "step_s": 0.2})
                       for i in range(1, 31)])
    # a: 70 left at 0.2 s; b and c unmeasured: the grid's speed (0.2 s)
    assert display.eta_s() == pytest.approx((70 * 0.2 + 50 * 0.2 + 40 * 0.2) / 2)
    display.ended(b, {"status": "finished", "timing": {"per_iteration_s": 0.5},
                      "objective": {}, "metrics": {}})
    # b is done and measured 0.5 s; the grid's median of (a 0.2, b 0.5) prices c
    assert display.eta_s() == pytest.approx((70 * 0.2 + 40 * 0.35) / 2)


def test_a_named_protocol_runs_its_floor_on_its_task_settings(registry, tmp_path,
                                                             monkeypatch):
    from benchsuite.blocks.data import DATA_ROOT_VARIABLE
    from benchsuite.running import planning

    if not SHARED_OMNIGLOT.is_dir():
        pytest.skip(f"the Omniglot subset is not at {SHARED_OMNIGLOT}")
    monkeypatch.setenv(DATA_ROOT_VARIABLE, str(SHARED_OMNIGLOT))
    specs = planning.plan(registry, protocol="betty-imaml", device="cpu", out=tmp_path)
    by_method = {s.method: s for s in specs}
    assert list(by_method) == ["imaml", "darts", "scratch"]
    floor, imaml = by_method["scratch"], by_method["imaml"]
    assert floor.protocol["kind"] == "floor" and floor.protocol["label"] == "floor"
    for key in ("ways", "shots", "query", "test_episodes", "eval_inner_steps", "inner_lr"):
        assert floor.config[key] == imaml.config[key]
    assert imaml.config["proximal_lambda"] == 0.02 and "proximal_lambda" not in floor.config
    with pytest.raises(UsageError, match="runs imaml, darts, scratch; it has no settings "
                                         "for maml"):
        planning.plan(registry, protocol="betty-imaml", methods="maml", device="cpu",
                      out=tmp_path)
