"""Trial records on disk: one JSON file per trial, written atomically, with provenance.

Layout: `<out>/<task>/<method>/seed<seed>-<id>.json`. A record is written to a temporary
file in the same folder, flushed and fsync'ed, then renamed over its final name, so a
reader (or a run killed at any moment) never sees a half-written record.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path

import torch

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "id", "method", "task", "seed", "status", "config",
                 "metrics", "curve", "timing", "memory", "provenance")
DONE_STATUSES = ("finished", "n/a")


def record_path(out: Path, task: str, method: str, seed: int, trial_id: str) -> Path:
    return Path(out) / task / method / f"seed{seed}-{trial_id}.json"


def write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: Path) -> dict:
    """Load one record; raises ValueError with the reason if it is not a valid record."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"schema_version {record.get('schema_version')!r}, "
                         f"expected {SCHEMA_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"missing keys {missing}")
    return record


def is_done(path: Path) -> bool:
    try:
        return read_record(path)["status"] in DONE_STATUSES
    except ValueError:
        return False


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
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = cpu_model()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "git_commit": git_commit(),
    }
