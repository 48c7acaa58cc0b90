"""Where data sets live on disk, and whether a task may fetch missing ones.

The data root is deliberately not part of a trial's config: the same trial on two machines
with their data in different folders has the same identity. The CLI's `--data-root` and
`--download` set the environment variables below, which worker processes inherit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

DATA_ROOT_VARIABLE = "BENCHSUITE_DATA"
DOWNLOAD_VARIABLE = "BENCHSUITE_DOWNLOAD"
DEFAULT_DATA_ROOT = Path("~/.cache/benchsuite/data")


def data_root() -> Path:
    """The folder holding every data set: $BENCHSUITE_DATA, else ~/.cache/benchsuite/data."""
    return Path(os.environ.get(DATA_ROOT_VARIABLE) or DEFAULT_DATA_ROOT).expanduser()


def download_allowed() -> bool:
    return os.environ.get(DOWNLOAD_VARIABLE, "") == "1"


def missing_files(root: Path, relative_paths: Iterable[str]) -> list[str]:
    return [p for p in relative_paths if not (root / p).exists()]


def missing_message(dataset: str, root: Path, expected: str) -> str:
    """One line: which data set is absent, what to put where, and how to fetch it."""
    return (f"{dataset} data not found in {root}: put {expected} there (--data-root DIR or "
            f"${DATA_ROOT_VARIABLE} picks the folder), or add --download to fetch it")


def files_problem(dataset: str, root: Path, files: Iterable[str], origin: str) -> str | None:
    """None when every one of `files` is in `root`, else the one-line missing-data message
    listing them, with `origin` saying what they are."""
    files = list(files)
    if not missing_files(root, files):
        return None
    return missing_message(dataset, root, f"{', '.join(files)} ({origin})")
