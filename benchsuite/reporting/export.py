"""Trial records as flat tables for other tools: `benchsuite export RESULTS --format csv`.

`trials.<ext>` has one row per trial record (`benchsuite.storage.results.load`: identity,
status, error, then the flattened `config.*`, `metric.*`, `timing.*`, `memory.*`,
`provenance.*`, `code.*`, `execution.*`, `objective.*`, `protocol.*` columns, and the file
it came from). The per-episode scores (`metric.episode_scores.*`, base64 blobs) are left
out: decode them from the records with `benchsuite.core.statistics.decode_scores`.
`curves.<ext>` (with `--curves`) has one row per learning-curve point. A column holding
tuples or values of several types is written as JSON text, so that every cell of a column
has one type (Parquet needs it; CSV readers get `[1, 2]` rather than `(1, 2)`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from benchsuite.core.errors import UsageError
from benchsuite.storage import results as stored

FORMATS = ("csv", "parquet")
EPISODE_COLUMNS = "metric.episode_scores."


def tabular(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every object column of non-string values as JSON text."""
    frame = frame.copy()
    for column in frame.select_dtypes(include="object").columns:
        values = frame[column].dropna()
        if not all(isinstance(v, str) for v in values):
            frame[column] = frame[column].map(
                lambda v: v if v is None or (isinstance(v, float) and v != v)
                else json.dumps(v, default=str))
    return frame


def check_format(fmt: str) -> None:
    """Raises UsageError for an unknown format, or parquet without pyarrow."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("--format parquet needs pyarrow: pip install "
                             "'benchsuite[parquet]' (or use --format csv)") from None


def export(results: Path, out: Path, fmt: str, curves: bool) -> tuple[list[Path], list[str]]:
    """Writes OUT/trials.<fmt> (and OUT/curves.<fmt>); the paths and the warnings (files
    skipped). Raises UsageError, writing nothing, for a bad format or no records."""
    check_format(fmt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", stored.RecordSkipped)
        trials = stored.load(results)
        points = stored.curves(results) if curves else None
    if trials.empty:
        raise UsageError(f"no trial records under {str(results)!r}")
    trials = trials.drop(columns=[c for c in trials if c.startswith(EPISODE_COLUMNS)])
    tables = {"trials": trials, **({"curves": points} if points is not None else {})}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            tabular(frame).to_csv(path, index=False)
        else:
            tabular(frame).to_parquet(path, index=False)
        written.append(path)
    skipped = list(dict.fromkeys(str(w.message) for w in caught
                                 if issubclass(w.category, stored.RecordSkipped)))
    return written, skipped
