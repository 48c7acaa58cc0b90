"""Which engine code a trial runs through, for its record's identity.

A record is current only while every line of code it ran through is unchanged: its
method's and task's plugin files, and the modules of `benchsuite` that the trial loop and
those plugins import, directly or through each other. The set is found statically, by
reading the `import` statements of the files (`import benchsuite.x`, `from benchsuite
import x`, `from benchsuite.x import y`), so it is the same on every machine and needs
nothing imported. The command line, the report and the other tools a trial never runs
through are not part of it: editing them leaves records current.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ENGINE = Path(__file__).resolve().parent
TRIAL_LOOP = ENGINE / "trial.py"
"""Where every trial starts: benchsuite.trial.run_trial."""


def imported_names(path: Path) -> set[str]:
    """Every dotted name the file at `path` imports (`from a.b import c` gives a.b and
    a.b.c), read from its source."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_engine_modules(path: Path) -> set[Path]:
    """The `benchsuite` modules that the file at `path` imports."""
    found = set()
    for name in imported_names(path):
        parts = name.split(".")
        if parts[0] == "benchsuite" and len(parts) > 1:
            module = ENGINE / f"{parts[1]}.py"
            if module.is_file():
                found.add(module)
    return found


def engine_files(plugin_files: Iterable[Path]) -> set[Path]:
    """The engine modules a trial of these plugin files runs through: the trial loop's
    and the plugins' imports, closed under the imports of the modules found."""
    pending = [TRIAL_LOOP, *map(Path, plugin_files)]
    seen: set[Path] = set()
    engine: set[Path] = {TRIAL_LOOP}
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_engine_modules(path):
            engine.add(module)
            pending.append(module)
    return engine
