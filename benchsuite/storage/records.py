"""Trial records on disk: one JSON file per trial, written atomically, with provenance.

Layout: `<out>/<task>/<method>/seed<seed>-<id>.json`. A record is written to a temporary
file in the same folder, flushed and fsync'ed, then renamed over its final name, so a
reader (or a run killed at any moment) never sees a half-written record. Reading checks
the layout and the types of everything the report uses, so a record that loads is safe to
report and a foreign or damaged file is named and skipped.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch

from benchsuite import __version__
from benchsuite.storage import reproducibility

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
"""Version 2 added `execution` (how the meta-batches ran), the engine's code hash in
`code` and the evaluation peak `memory.eval_peak_bytes`. Version 1 records still load;
lacking the engine hash, they are never current (the report labels them older code)."""

# -- the status vocabulary: every record has one of these -------------------------------------
FINISHED = "finished"          # trained and evaluated: the metrics are in the record
NOT_APPLICABLE = "n/a"         # the method cannot run on the task (the reason is the error)
FAILED = "failed"              # the trial raised, its worker died, or it could not start
DIVERGED = "diverged"          # a non-finite meta-objective or hypergradient
OOM = "oom"                    # out of memory (PyTorch's allocator, the OOM killer, Ray)
TIMEOUT = "timeout"            # ran past its wall-clock limit (--timeout)
STATUSES = (FINISHED, NOT_APPLICABLE, FAILED, DIVERGED, OOM, TIMEOUT)
DONE_STATUSES = (FINISHED, NOT_APPLICABLE, DIVERGED)
"""Statuses a re-run keeps: a result (a divergence is one: the same config diverges
again). failed, oom and timeout records are re-run, since the cause may be gone."""
GOOD_STATUSES = (FINISHED, NOT_APPLICABLE)
"""Statuses a run counts as success: anything else is listed as a trial that did not
finish (a kept divergence included)."""

TEMPORARY_PREFIX = ".tmp-"  # a record being written; never read as one

FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "schema_version": int, "id": str, "method": str, "task": str, "seed": int,
    "status": str, "config": dict, "code": dict, "metrics": dict, "curve": list,
    "timing": dict, "memory": dict, "provenance": dict, "objective": dict,
    "error": (str, type(None)),
}
REQUIRED_KEYS = tuple(FIELD_TYPES)


def record_path(out: Path, task: str, method: str, seed: int, trial_id: str) -> Path:
    return Path(out) / task / method / f"seed{seed}-{trial_id}.json"


class PlannedTrial(Protocol):
    """What a record starts from: benchsuite.running.planning.TrialSpec. Typed by its shape, so
    this module imports nothing from the planner (the planner imports `record_path`)."""

    @property
    def trial_id(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def code(self) -> dict[str, str]: ...
    @property
    def objective(self) -> dict[str, Any]: ...
    @property
    def protocol(self) -> dict[str, Any]: ...


def new_record(spec: PlannedTrial, status: str, error: str | None = None) -> dict:
    """The record of `spec` with nothing measured yet: every status starts from it."""
    return {
        "schema_version": SCHEMA_VERSION, "id": spec.trial_id, "method": spec.method,
        "task": spec.task, "seed": spec.seed, "status": status, "config": spec.config,
        "code": spec.code, "metrics": {}, "curve": [], "timing": {}, "memory": {},
        "execution": {}, "provenance": {}, "error": error, "objective": spec.objective,
        "protocol": spec.protocol,
    }


def write_atomic(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=str),
                      suffix=".json")


def write_text_atomic(path: Path, text: str, suffix: str) -> None:
    """Write `text` to a temporary file beside `path` (named TEMPORARY_PREFIX…`suffix`,
    which readers skip), flush and fsync it, then rename it over `path`: a reader never
    sees half a file, and a write interrupted at any moment leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX, suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a machine crash right after a write keeps it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


def read_record(path: Path) -> dict:
    """Load one record; raises ValueError with the reason if it is not a valid record:
    everything the report reads is checked here, so a record that loads can be reported."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(f"schema_version {record.get('schema_version')!r}, expected one "
                         f"of {READABLE_SCHEMA_VERSIONS}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"missing keys {missing}")
    for key, kind in FIELD_TYPES.items():
        if not _is_a(record[key], kind):
            raise ValueError(f"{key} is a {type(record[key]).__name__}, "
                             f"expected {_type_names(kind)}")
    if record["status"] not in STATUSES:
        raise ValueError(f"unknown status {record['status']!r}")
    objective = record["objective"]
    if not (isinstance(objective.get("metric"), str)
            and isinstance(objective.get("higher_is_better"), bool)):
        raise ValueError("objective needs a metric name and higher_is_better")
    if record["status"] == FINISHED:
        _check_measurements(record, objective["metric"])
    return record


def _check_measurements(record: dict, metric: str) -> None:
    numbers = {"metrics": (metric, f"{metric}_std", f"{metric}_n"),
               "timing": ("total_s",), "memory": ("peak_bytes",)}
    for field, keys in numbers.items():
        for key in keys:
            if not _is_a(record[field].get(key), (int, float)):
                raise ValueError(f"finished record without a number at {field}.{key}")
    if record["metrics"][f"{metric}_n"] < 1:
        raise ValueError(f"metrics.{metric}_n is below 1")
    for point in record["curve"]:
        if not (isinstance(point, dict) and _is_a(point.get("iteration"), int)
                and _is_a(point.get(f"val_{metric}"), (int, float))
                and _is_a(point.get("train_time_s"), (int, float))):
            raise ValueError(f"curve point {str(point)[:60]} lacks iteration, "
                             f"train_time_s or val_{metric}")


def _is_a(value, kind) -> bool:
    """isinstance, except that a JSON true/false is not a number."""
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)


def _type_names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def kept_record(path: Path) -> dict | None:
    """The valid record at `path` if a re-run keeps it (see DONE_STATUSES), else None."""
    try:
        record = read_record(path)
    except ValueError:
        return None
    return record if record["status"] in DONE_STATUSES else None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: torch.device) -> dict:
    import numpy
    import PIL

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = cpu_model()
    return {
        "benchsuite": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "git_commit": git_commit(),
        # on CUDA: GPU, driver, CUDA, cuDNN and the determinism settings; {} on CPU
        **reproducibility.cuda_provenance(device),
    }
