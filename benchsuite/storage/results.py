"""Trial records as pandas tables, for analysis beyond the leaderboard.

    >>> from benchsuite import results
    >>> frame = results.load("results/reference")
    >>> frame.groupby(["task", "method"])["metric.mse"].mean()

`load` gives one row per trial record found under a folder (or one record file): the
trial's identity (`id`, `method`, `task`, `seed`, `status`, `protocol` — the protocol's
label, e.g. "paper protocol" —, `error`) and its nested parts flattened into columns with
a prefix: `metric.<name>`, `timing.<name>`, `memory.<name>`, `provenance.<name>`,
`config.<key>`, `code.<name>`, `execution.<name>`, `objective.<name>` and
`protocol.<name>` (kind, name, source, deviations). A nested value deeper down is
flattened with dots as well (`config.a.b`); a list becomes a tuple, so every column can be
grouped on. `curves` gives
the learning curves in long form, one row per curve point.

`read_records` is the reading underneath: every valid record as a dict, and one line per
file skipped. Files are checked with `benchsuite.storage.records.read_record`; temporary files are
ignored, and a file that is not a valid record, or a second file holding a trial id
already read, is skipped — with a `RecordSkipped` warning from `load` and `curves`, or a
`ValueError` with `strict=True`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from benchsuite.storage.records import TEMPORARY_PREFIX, read_record

IDENTITY_COLUMNS = ("id", "method", "task", "seed", "status", "protocol", "error")
FLATTENED_PARTS = {  # record key -> column prefix
    "metrics": "metric", "timing": "timing", "memory": "memory", "provenance": "provenance",
    "config": "config", "code": "code", "objective": "objective", "execution": "execution",
    "protocol": "protocol",
}
CURVE_IDENTITY = ("id", "method", "task", "seed")


class RecordSkipped(UserWarning):
    """A file under the folder given to `load` was not used (the message says why)."""


def load(path: str | Path, *, strict: bool = False) -> pd.DataFrame:
    """One row per trial record under `path` (a folder, searched recursively, or one
    record file), sorted by task, method, seed and file. Columns: see the module
    docstring; `path` holds the file each row was read from."""
    rows = [_row(record) for record in _checked_records(path, strict)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*IDENTITY_COLUMNS, "path"])
    flattened = sorted(c for c in frame.columns if c not in (*IDENTITY_COLUMNS, "path"))
    frame = frame[[*IDENTITY_COLUMNS, *flattened, "path"]]
    return frame.sort_values(["task", "method", "seed", "path"], ignore_index=True)


def curves(path: str | Path, *, strict: bool = False) -> pd.DataFrame:
    """The learning curves of the records under `path`: one row per curve point, with the
    trial's `id`, `method`, `task` and `seed` and the point's own fields (`iteration`,
    `train_time_s`, `train_outer_loss`, `val_<metric>`, ...)."""
    rows: list[dict] = []
    for record in _checked_records(path, strict):
        identity = {key: record[key] for key in CURVE_IDENTITY}
        rows.extend({**identity, **point} for point in record["curve"])
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*CURVE_IDENTITY, "iteration"])
    return frame.sort_values([*CURVE_IDENTITY, "iteration"], ignore_index=True)


def read_records(path: str | Path) -> tuple[list[dict], list[str]]:
    """Every valid record under `path` (a folder, searched recursively, or one file), each
    with the file it came from under `"_path"`, and one line per file skipped: not a
    valid record (`benchsuite.storage.records.read_record` says why), or a second file holding a
    trial id already read (e.g. two results folders merged: a trial counts once).
    Temporary files of records being written are ignored."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*.json")
                       if not p.name.startswith(TEMPORARY_PREFIX))
    else:
        raise FileNotFoundError(f"no records folder or file at {str(path)!r}")
    seen: dict[str, Path]
    records, skipped, seen = [], [], {}
    for file in files:
        try:
            record = read_record(file)
        except ValueError as error:
            skipped.append(f"skipped {file}: {error}")
            continue
        if record["id"] in seen:
            skipped.append(f"skipped {file}: same trial id as {seen[record['id']]}")
            continue
        seen[record["id"]] = file
        records.append({**record, "_path": str(file)})
    return records, skipped


def _checked_records(path: str | Path, strict: bool) -> list[dict]:
    records, skipped = read_records(path)
    if skipped and strict:
        raise ValueError(skipped[0])
    for line in skipped:
        warnings.warn(line, RecordSkipped, stacklevel=3)
    return records


def _row(record: dict) -> dict[str, Any]:
    row: dict[str, Any] = {key: record.get(key) for key in IDENTITY_COLUMNS}
    # the leaderboard's label ("paper protocol", "tuned (budget 4)", ...); the protocol's
    # name, kind and source are the protocol.* columns
    row["protocol"] = (record.get("protocol") or {}).get("label")
    for key, prefix in FLATTENED_PARTS.items():
        part = record.get(key)
        if isinstance(part, Mapping):
            row.update(_flatten(part, prefix))
    row["path"] = record["_path"]
    return row


def _flatten(part: Mapping, prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in part.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = _hashable(value)
    return flat


def _hashable(value: Any) -> Any:
    """Lists (JSON arrays) as tuples, nested ones too, so a column can be grouped on."""
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value
