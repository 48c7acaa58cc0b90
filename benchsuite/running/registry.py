"""Plugin discovery: every `*.py` file in `methods/`, `tasks/` and any `--plugins DIR` is
loaded and its Method / Task subclasses registered under their `name` (and aliases).

Adding a method or a task means adding one file; nothing here names one. A file whose
import fails is listed as unavailable with its error instead of breaking the listing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsuite.core.contract import PROBLEM_KINDS, Method, Task
from benchsuite.core.errors import UsageError
from benchsuite.core.settings import Setting
from benchsuite.running.plugin_rules import (
    builtin_plugin_dirs,
    canonical_names,
    method_problem,
    plugin_paths,
    task_problem,
)
from benchsuite.storage.identity import engine_files, hash_files, imported_names


@dataclass
class Plugin:
    cls: type[Any]
    """A Method or a Task subclass (typed loosely: callers use either's attributes)."""
    path: Path
    source_hash: str
    files: tuple[Path, ...] = ()
    """The plugin's file and the plugin files it builds on (what `source_hash` covers)."""

    @property
    def settings(self) -> tuple[Setting, ...]:
        """The keys its typed `Settings` declare (benchsuite.core.settings), checked at planning;
        read when the class was defined (contract.py)."""
        return self.cls.declared_settings


@dataclass
class Registry:
    methods: dict[str, Plugin] = field(default_factory=dict)
    tasks: dict[str, Plugin] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def method(self, name: str) -> Plugin:
        return _lookup(self.methods, name, "method")

    def task(self, name: str) -> Plugin:
        return _lookup(self.tasks, name, "task")

    def canonical_methods(self) -> list[str]:
        """Method names without aliases, the set `--methods all` runs."""
        return canonical_names({n: p.cls for n, p in self.methods.items()})

    def canonical_tasks(self) -> list[str]:
        return sorted(self.tasks)


def _lookup(plugins: dict[str, Plugin], name: str, what: str) -> Plugin:
    if name not in plugins:
        valid = ", ".join(sorted(plugins))
        raise UsageError(f"unknown {what} {name!r}; valid {what}s: {valid} (or 'all')")
    return plugins[name]


def discover(extra_dirs: Sequence[str | Path] = ()) -> Registry:
    registry = Registry()
    for path in plugin_paths(extra_dirs):
        load_plugin_file(path, registry)
    return registry


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def plugin_files(module, path: Path) -> tuple[Path, ...]:
    """A plugin file and the plugin files it builds on: those its classes and functions
    come from (a method subclassing another method's class) and the built-in plugins it
    imports anything from (a task reusing another task's protocol table)."""
    folders = {*builtin_plugin_dirs(), path.parent}
    files = {path}
    for value in vars(module).values():
        origin = getattr(inspect.getmodule(value), "__file__", None)
        if origin and Path(origin).parent in folders and not Path(origin).name.startswith("_"):
            files.add(Path(origin))
    packages = {"benchsuite.methods": builtin_plugin_dirs()[0],
                "benchsuite.tasks": builtin_plugin_dirs()[1]}
    for name in imported_names(path):
        package, _, rest = name.rpartition(".")
        if package in packages and (packages[package] / f"{rest}.py").is_file():
            files.add(packages[package] / f"{rest}.py")
    return tuple(sorted(files))


def code_identity(method: Plugin, task: Plugin) -> dict[str, str]:
    """What a trial's record is current against: the method's and the task's plugin code,
    and the engine code the trial runs through (benchsuite.storage.identity). Editing any of it
    makes the records made before stale."""
    return {"method": method.source_hash, "task": task.source_hash,
            "engine": hash_files(engine_files([*method.files, *task.files]))}


def changed_code(stored: dict, method: Plugin, task: Plugin) -> list[str]:
    """The roles ("method", "task", "engine") whose code differs from a record's."""
    current = code_identity(method, task)
    return [role for role in current if stored.get(role) != current[role]]


def load_plugin_file(path: Path, registry: Registry) -> None:
    module_name = f"benchsuite_plugin_{path.parent.name}_{path.stem}_{file_hash(path)}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        # a .py path always gets a spec with a loader (a None would raise here, inside the
        # try, and list the file as unavailable)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        # registered as an import would be: dataclasses (a plugin's typed Settings) and
        # pickling look a class's module up by name
        sys.modules[module_name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as error:  # a broken plugin must not hide the others
        sys.modules.pop(module_name, None)
        registry.unavailable[str(path)] = f"{type(error).__name__}: {error}"
        return
    files = plugin_files(module, path)
    code = hash_files(files)
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module_name or not hasattr(cls, "name"):
            continue
        if not (issubclass(cls, Method | Task) and cls not in (Method, Task)):
            continue
        problem = (method_problem(cls) if issubclass(cls, Method)
                   else task_problem(cls, PROBLEM_KINDS))
        if problem:
            registry.unavailable[str(path)] = problem
        elif issubclass(cls, Method):
            _register(registry.methods, cls, path, code, files, (cls.name, *cls.aliases),
                      registry)
        else:
            _register(registry.tasks, cls, path, code, files, (cls.name,), registry)


def _register(table, cls, path, code, files, names, registry):
    """Register `cls` under `names`; a name another plugin class already has is a usage
    error (which of the two a run would mean cannot be guessed)."""
    plugin = Plugin(cls=cls, path=path, source_hash=code, files=files)
    for name in names:
        other = table.get(name)
        if other is not None and (other.path, other.cls.__qualname__) != (
                path, cls.__qualname__):
            raise UsageError(f"two plugins are named {name!r}: {cls.__qualname__} in {path} "
                             f"and {other.cls.__qualname__} in {other.path}; rename one")
    for name in names:
        table[name] = plugin
