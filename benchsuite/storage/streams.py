"""Per-iteration metric streams, written beside a trial's record while it trains, for a
user to watch (`tail -f`, TensorBoard) and to read afterwards.

  <record>.metrics.csv    always: one row per meta-iteration (its outer loss and seconds)
                          and one per learning-curve point (the validation metric and its
                          interval), flushed at most every `FLUSH_EVERY_S` and at each
                          curve point.
  <record>.tensorboard/   where TensorBoard is installed (the `tensorboard` extra): the
                          same scalars as an event file (`tensorboard --logdir RESULTS`).

A stream is a log, not a result: the record holds every number a report prints, and a
stream that cannot be written (a read-only folder, a full disk, a results folder that
vanished: a stream never creates one) stops, with the reason in `problem`, while the
trial goes on. A trial that runs again starts its stream afresh.
"""

from __future__ import annotations

import csv
import errno
import time
from pathlib import Path
from typing import IO, Any

CSV_SUFFIX = ".metrics.csv"
TENSORBOARD_SUFFIX = ".tensorboard"
FLUSH_EVERY_S = 1.0
ITERATION_COLUMNS = ("iteration", "elapsed_s", "outer_loss", "step_s", "compile_s")
"""Columns of a meta-iteration's row (`elapsed_s`: seconds since the trial started, as
the trial measured them); a curve point's row adds the curve's validation columns
(val_<metric>, val_<metric>_ci95) and leaves `outer_loss` … `compile_s` empty."""


def csv_path(record_path: Path) -> Path:
    return record_path.with_name(record_path.stem + CSV_SUFFIX)


def tensorboard_path(record_path: Path) -> Path:
    return record_path.with_name(record_path.stem + TENSORBOARD_SUFFIX)


def is_stream(path: Path) -> bool:
    """Whether `path` is (in) a metric stream, not a record."""
    return path.name.endswith(CSV_SUFFIX) or any(
        part.endswith(TENSORBOARD_SUFFIX) for part in path.parts)


def _tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter on `folder`, or None where TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        return None
    return SummaryWriter(log_dir=str(folder))


class MetricStream:
    """The stream of one trial: `write(kind, iteration, elapsed_s, values)` per training
    event (benchsuite.running.trial.Event's fields), `close()` when its record is filed.
    `results`: the results folder the record goes under (it must exist; the record's own
    subfolders are made)."""

    def __init__(self, record_path: Path, results: Path):
        self.path = csv_path(record_path)
        self.results = results
        self.flushed = time.monotonic()
        self.file: IO[str] | None = None
        self.writer: csv.DictWriter | None = None
        self.board = None
        self.board_path = tensorboard_path(record_path)
        self.problem: str | None = None
        """Why the stream stopped (None while it runs)."""

    def write(self, kind: str, iteration: int, elapsed_s: float,
              values: dict[str, Any]) -> None:
        if self.problem is not None:
            return
        try:
            self._write(kind, iteration, elapsed_s, values)
        except OSError as error:
            self.problem = (f"metric stream {self.path} stopped: "
                            f"{error.strerror or error}; the trial's record is unaffected")
            self.close()

    def _write(self, kind: str, iteration: int, elapsed_s: float,
               values: dict[str, Any]) -> None:
        now = time.monotonic()
        if kind == "curve":
            row = {k: v for k, v in values.items() if k.startswith("val_")}
        else:
            row = {k: values.get(k) for k in ITERATION_COLUMNS[2:]}
        row.update(iteration=iteration, elapsed_s=round(elapsed_s, 6))
        if self.writer is None:
            self._open(list(ITERATION_COLUMNS) + [k for k in row if k not in ITERATION_COLUMNS])
        assert self.writer is not None and self.file is not None
        self.writer.writerow(row)
        if self.board is not None:
            for key, value in row.items():
                if key not in ("iteration", "elapsed_s") and isinstance(value, (int, float)):
                    self.board.add_scalar(key, value, iteration)
        if kind == "curve" or now - self.flushed >= FLUSH_EVERY_S:
            self.file.flush()
            if self.board is not None:
                self.board.flush()
            self.flushed = now

    def _open(self, columns: list[str]) -> None:
        if not self.results.is_dir():  # never re-create a vanished results folder
            raise FileNotFoundError(errno.ENOENT, "the results folder vanished")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, columns, extrasaction="ignore")
        self.writer.writeheader()
        _remove_event_files(self.board_path)
        self.board = _tensorboard_writer(self.board_path)

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None
        if self.board is not None:
            board, self.board = self.board, None
            try:
                board.close()  # flushes: its folder may have vanished meanwhile
            except OSError:
                pass


def _remove_event_files(folder: Path) -> None:
    """Remove an earlier run's event files, so TensorBoard shows this run alone. The folder
    stays: a run of the same trial beside this one (another process) writes its own event
    file there, and TensorBoard's writer re-opens its file by path at each flush."""
    for events in folder.glob("events.out.tfevents.*"):
        events.unlink(missing_ok=True)
