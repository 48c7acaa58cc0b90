"""Trial records on disk: one JSON file per trial, written atomically, with provenance.

Layout: `<out>/<task>/<method>/seed<seed>-<id>.json`. A record is written to a temporary
file in the same folder (mode 0666 less the umask), flushed and fsync'ed, then renamed
over its final name, so a reader (or a run killed at any moment) never sees a
half-written record. Reading checks the layout and the types of everything the report
uses, so a record that loads is safe to report and a foreign or damaged file is named and
skipped.

`write_record` is the one way a trial's record is stored. Under a lock on the record
(`fcntl.flock` on a hidden `.lock` file beside it, which serialises writers in processes
on one machine and, through the NFS lock manager, on machines sharing the folder) it reads
what is stored and replaces it only with a record at least as complete (`COMPLETENESS`:
finished and n/a > diverged > failed, oom, timeout); the writer that loses says which
record it kept (`Stored`). With `force`, a record replaces one of equal completeness too:
a finished record only ever gives way to another finished one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

COMPLETENESS = {FINISHED: 2, NOT_APPLICABLE: 2, DIVERGED: 1, FAILED: 0, OOM: 0, TIMEOUT: 0}
"""How much of its trial a record holds: a stored record is replaced only by one at least
as complete (write_record)."""

TEMPORARY_PREFIX = ".tmp-"  # a record being written; never read as one
LOCK_SUFFIX = ".lock"       # `.<record name>.lock` beside a record: its writers' lock

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


@dataclass(frozen=True)
class Stored:
    """What `write_record` left at `path`: `record`, the one written or, when `kept`, the
    one already there, which the offered record (of status `offered`) could not replace."""

    path: Path
    record: dict
    offered: str
    kept: bool = False

    def describe(self) -> str:
        """One line on a kept record: which one, and what was not stored."""
        made = self.record.get("provenance", {})
        where = ", ".join(f"{k} {made[k]}" for k in ("host", "ended_at") if made.get(k))
        return (f"kept the {self.record['status']} record at {self.path}"
                + (f" ({where})" if where else "")
                + f"; this run's {self.offered} result of the same trial was not stored")


def replaces(new: dict, old: dict, force: bool = False) -> bool:
    """Whether the record `new` may replace the stored record `old`: when it is more
    complete (COMPLETENESS), or as complete and either `force` or `old` something a
    re-run does not keep (the latest of two failures is stored)."""
    more, less = COMPLETENESS[new["status"]], COMPLETENESS[old["status"]]
    return more > less or (more == less and (force or old["status"] not in DONE_STATUSES))


def write_record(path: Path, record: dict, *, force: bool = False) -> Stored:
    """Store `record` at `path` unless the valid record stored there is more complete
    (or as complete and kept by a re-run, without `force`): read, compare and write
    under the record's lock, so two runs finishing the same trial at once cannot
    interleave. Raises OSError when the folder cannot be written."""
    path = Path(path)
    with record_lock(path):
        _remove_temporaries_of(path)
        try:
            stored = read_record(path)
        except ValueError:  # none, or damaged: anything valid is better
            stored = None
        if stored is not None and not replaces(record, stored, force):
            return Stored(path, stored, record["status"], kept=True)
        write_atomic(path, record)
    return Stored(path, record, record["status"])


_IN_PROCESS = threading.Lock()  # flock excludes processes; this, the threads of one


@contextmanager
def record_lock(path: Path) -> Iterator[None]:
    """Hold the writers' lock of the record at `path`: an exclusive `flock` on the hidden
    file `.<name>.lock` beside it (created, with its folder, when missing; never removed,
    since removing a lock file another writer has open would split the lock in two)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _IN_PROCESS:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


def write_atomic(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=str),
                      suffix=".json")


def write_text_atomic(path: Path, text: str, suffix: str) -> None:
    """Write `text` to a temporary file beside `path` (named TEMPORARY_PREFIX, `path`'s
    name, a random part and `suffix`: readers skip it), flush and fsync it, then rename it
    over `path`: a reader never sees half a file, and a write interrupted at any moment
    leaves the old one. The file gets mode 0666 less the umask, as any new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMPORARY_PREFIX}{path.name}-{secrets.token_hex(4)}{suffix}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _temporaries_of(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(f"{TEMPORARY_PREFIX}{path.name}-*")
            if p.name != path.name]


def _remove_temporaries_of(path: Path) -> int:
    """Remove the temporary files of writers of `path` that were killed mid-write (call
    with its lock held: a live writer holds the lock while its temporary file exists)."""
    found = _temporaries_of(path)
    for tmp in found:
        tmp.unlink(missing_ok=True)
    return len(found)


def remove_stale_temporaries(paths: Iterable[Path]) -> int:
    """Remove the temporary files that killed writers left beside the records at `paths`
    (each under its record's lock); returns how many there were."""
    removed = 0
    for path in paths:
        if _temporaries_of(Path(path)):
            with record_lock(Path(path)):
                removed += _remove_temporaries_of(Path(path))
    return removed


def folder_problem(folder: Path, option: str) -> str | None:
    """Why `option`'s folder `folder` (created when missing) cannot receive files: a path
    through a file, or a folder this process may not write in (permissions, a read-only
    file system). None when it can."""
    folder = Path(folder)
    existing = folder
    while not (existing.exists() or existing.is_symlink()) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"is inside {str(existing)!r}, a file"
        return f"{option} {str(folder)!r} {where}; pass a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{option} {str(folder)!r}: {str(existing)!r} is not writable (read-only "
                "file system or no permission); pass a folder you can write to")
    return None


def io_problem(error: OSError) -> str:
    """An I/O error in one line: the path, the cause and what to do about it."""
    what = {errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space (quota)",
            errno.EROFS: "the file system is read-only: use a writable folder",
            errno.EACCES: "fix the permissions or use a folder you can write to",
            errno.EPERM: "fix the permissions or use a folder you can write to",
            errno.ENOTDIR: "a part of the path is a file: use a folder path",
            errno.ENOENT: "a folder of the path vanished: check the path"}
    hint = what.get(error.errno or 0, "check the path and the disk")
    where = error.filename if error.filename is not None else "?"
    return f"{where}: {error.strerror or error}; {hint}"


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
