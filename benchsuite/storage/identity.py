"""Which code a trial runs through, for its record's identity.

A record is current only while the code it ran through computes what it computed then: its
method's and task's plugin files, and the modules of `benchsuite` that the trial loop and
those plugins import, directly or through each other. The set is found statically, by
reading the `import` statements of the files, so it is the same on every machine and needs
nothing imported. The command line, the report and the other tools a trial never runs
through are not part of it: editing them leaves records current.

Each file is identified by its code, not by its bytes or its place (`code_hash`): comments,
docstrings and blank lines are left out, and every import of a `benchsuite` module is
replaced by that module's own identity, recursively. So moving or renaming an engine module,
or rewording a docstring, keeps every record current, while a change to any statement that
runs, in the file or in anything it imports, makes the records made before it stale.
"""

from __future__ import annotations

import ast
import hashlib
import io
import itertools
import re
import tokenize
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent
PACKAGE = "benchsuite"
TRIAL_LOOP = ENGINE / "running" / "trial.py"
"""Where every trial starts: benchsuite.running.trial.run_trial."""
_IMPORT_MARK = re.compile(rf"@({PACKAGE}(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
"""An engine import in normalised code (`_canonical_import`)."""


def module_file(name: str) -> Path | None:
    """The engine file a dotted module name denotes (`benchsuite.a.b` → a/b.py or
    a/b/__init__.py), None for anything else (a plugin package, a name inside a module)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    folder = ENGINE.joinpath(*parts[1:])
    for candidate in (folder.with_suffix(".py") if len(parts) > 1 else None,
                      folder / "__init__.py"):
        if candidate is not None and candidate.is_file() and _is_engine(candidate):
            return candidate
    return None


def _is_engine(path: Path) -> bool:
    # benchsuite.methods / benchsuite.tasks are plugin packages, identified as plugins
    return path.resolve().is_relative_to(ENGINE)


@cache
def _absolute_imports(source: str) -> tuple[tuple[str | None, tuple[str, ...]], ...]:
    """The absolute imports of a source text, parsed once per text: `(module, names)` for
    `from module import names`, `(None, names)` for `import names`."""
    found: list[tuple[str | None, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.append((None, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, tuple(alias.name for alias in node.names)))
    return tuple(found)


def imported_names(path: Path) -> set[str]:
    """Every dotted name the file at `path` imports (`from a.b import c` gives a.b and
    a.b.c), read from its source."""
    names: set[str] = set()
    for module, aliases in _absolute_imports(Path(path).read_text()):
        if module is None:
            names.update(aliases)
        else:
            names.add(module)
            names.update(f"{module}.{alias}" for alias in aliases)
    return names


def imported_engine_modules(path: Path) -> set[Path]:
    """The `benchsuite` modules that the file at `path` imports (`from package import
    module` names the module, not the package)."""
    found: set[Path | None] = set()
    for module, aliases in _absolute_imports(Path(path).read_text()):
        if module is None:
            found.update(module_file(alias) for alias in aliases)
        else:
            modules = {module_file(f"{module}.{alias}") for alias in aliases}
            found.update(modules if None not in modules else {module_file(module)})
    return {module for module in found if module is not None}


def warm() -> None:
    """Parse every engine module once (the caches are keyed by source text, so a file
    edited afterwards is parsed anew): what a process forked after this inherits."""
    for path in ENGINE.rglob("*.py"):
        source = path.read_text()
        _absolute_imports(source)
        _normalised_code(source)


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


def code_hash(path: Path) -> str:
    """The identity of one file's code: its statements without comments, docstrings or
    blank lines, each engine import replaced by the imported module's identity."""
    return _code_hash(Path(path).resolve(), (), {})


def hash_files(files: Iterable[Path]) -> str:
    """One identity for several files' code (order-free)."""
    digest = hashlib.sha256()
    known: dict[Path, str] = {}  # each module hashed once per call, however often imported
    for identity in sorted(_code_hash(Path(file).resolve(), (), known) for file in files):
        digest.update(identity.encode())
    return digest.hexdigest()[:16]


def _code_hash(path: Path, importing: tuple[Path, ...], known: dict[Path, str]) -> str:
    if path in known:
        return known[path]
    text = _normalised_code(path.read_text())
    # an import is written as @<name> in the normalised code; each becomes its identity
    # (a cycle, which the engine's layering rules out, keeps the module's name instead)
    for name in sorted(set(_IMPORT_MARK.findall(text)), key=len, reverse=True):
        target = module_file(name)
        if target is None:
            continue
        target = target.resolve()
        ident = name if target in importing else _code_hash(target, (*importing, path), known)
        text = text.replace(f"@{name}", f"@{ident}")
    known[path] = hashlib.sha256(_sorted_imports(text).encode()).hexdigest()[:16]
    return known[path]


def _sorted_imports(text: str) -> str:
    """Each run of import lines at one indentation in a fixed order, one name a line: the
    order of imports (which a formatter changes when a module moves) is not code."""
    lines: list[tuple[bool, str, str]] = []
    for line in text.split("\n"):
        stripped = line.lstrip()
        indent = line[:len(line) - len(stripped)]
        if stripped.startswith(("import ", "from ")):
            lines.extend((True, indent, indent + part) for part in stripped.split("; "))
        else:
            lines.append((False, indent, line))
    out: list[str] = []
    for (is_import, _), group in itertools.groupby(lines, key=lambda line: line[:2]):
        texts = [text for _, _, text in group]
        out.extend(sorted(texts) if is_import else texts)
    return "\n".join(out)


@cache
def _normalised_code(source: str) -> str:
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def at(row: int, col: int, in_bytes: bool) -> int:
        # ast gives columns in UTF-8 bytes, tokenize in characters
        line = lines[row - 1] if row <= len(lines) else ""
        chars = len(line.encode()[:col].decode(errors="ignore")) if in_bytes else col
        return starts[row - 1] + chars

    def span(node: ast.stmt, replacement: str) -> tuple[int, int, str]:
        assert node.end_lineno is not None and node.end_col_offset is not None
        return (at(node.lineno, node.col_offset, True),
                at(node.end_lineno, node.end_col_offset, True), replacement)

    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) character spans
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):  # a docstring: never executed
            edits.append(span(node, ""))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            canonical = _canonical_import(node)
            if canonical is not None:
                edits.append(span(node, canonical))
    statements = list(edits)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            start, end = at(*token.start, False), at(*token.end, False)
            if not any(s <= start < e for s, e, _ in statements):
                edits.append((start, end, ""))
    for start, end, replacement in sorted(edits, reverse=True):
        source = source[:start] + replacement + source[end:]
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


def _canonical_import(node: ast.Import | ast.ImportFrom) -> str | None:
    """The import written one name at a time, by what it imports rather than from where:
    `@module` marks each engine module (replaced by its identity later); names of other
    packages and names inside a module stay."""
    if isinstance(node, ast.Import):
        return "; ".join(f"import {_marked(a.name)} as {a.asname or a.name}"
                         for a in node.names)
    if node.level != 0 or not node.module:
        return None
    parts = []
    for alias in node.names:
        bound = alias.asname or alias.name
        if module_file(f"{node.module}.{alias.name}") is not None:
            parts.append(f"import @{node.module}.{alias.name} as {bound}")
        else:
            parts.append(f"from {_marked(node.module)} import {alias.name} as {bound}")
    return "; ".join(parts)


def _marked(module: str) -> str:
    return f"@{module}" if module_file(module) is not None else module
