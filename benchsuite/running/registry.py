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

import benchsuite.methods as builtin_methods  # the checkout's methods/ (pyproject package-dir)
import benchsuite.tasks as builtin_tasks  # the checkout's tasks/
from benchsuite.core.contract import PROBLEM_KINDS, Method, Task
from benchsuite.core.errors import UsageError
from benchsuite.core.settings import Setting
from benchsuite.running.config import ENGINE_KEYS, TASK_KEYS
from benchsuite.storage.identity import engine_files, hash_files, imported_names

REQUIRED_TASK_DEFAULTS = TASK_KEYS


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
        return sorted(n for n, p in self.methods.items() if p.cls.name == n)

    def canonical_tasks(self) -> list[str]:
        return sorted(self.tasks)


def _lookup(plugins: dict[str, Plugin], name: str, what: str) -> Plugin:
    if name not in plugins:
        valid = ", ".join(sorted(plugins))
        raise UsageError(f"unknown {what} {name!r}; valid {what}s: {valid} (or 'all')")
    return plugins[name]


def builtin_plugin_dirs() -> list[Path]:
    return [Path(builtin_methods.__file__).parent, Path(builtin_tasks.__file__).parent]


def discover(extra_dirs: Sequence[str | Path] = ()) -> Registry:
    registry = Registry()
    for folder in [*builtin_plugin_dirs(), *map(Path, extra_dirs)]:
        if not folder.is_dir():
            raise UsageError(f"plugin folder {str(folder)!r} does not exist; pass a folder "
                             "holding method/task .py files")
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
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
        problem = _method_problem(cls) if issubclass(cls, Method) else _task_problem(cls)
        if problem:
            registry.unavailable[str(path)] = problem
        elif issubclass(cls, Method):
            _register(registry.methods, cls, path, code, files, (cls.name, *cls.aliases),
                      registry)
        else:
            _register(registry.tasks, cls, path, code, files, (cls.name,), registry)


def _task_problem(cls: type[Task]) -> str | None:
    """Why a task class cannot be registered: a bad kind, an engine key its defaults
    lack, or a key it does not declare once (benchsuite.running.config.Settings, its Settings)."""
    if cls.kind not in PROBLEM_KINDS:
        return f"task {cls.name!r} has kind {cls.kind!r}; use one of {PROBLEM_KINDS}"
    missing = [k for k in REQUIRED_TASK_DEFAULTS if k not in cls.defaults]
    if missing:
        return f"task {cls.name!r} lacks defaults {missing}"
    own = {s.name for s in cls.declared_settings}
    twice = sorted(own & ENGINE_KEYS)
    if twice:
        return (f"task {cls.name!r} declares the engine's keys {twice} in its Settings; "
                "set their values in `defaults`")
    untyped = sorted((set(cls.defaults) | set(cls.quick)) - own - ENGINE_KEYS)
    if untyped:
        return (f"task {cls.name!r} sets {untyped}, which neither its Settings nor the "
                "engine's (benchsuite.running.config.Settings) declare")
    return None


def _method_problem(cls: type[Method]) -> str | None:
    """Why a method class cannot be registered: a key it does not declare once, or a
    trait naming a key it does not have."""
    own = {s.name for s in cls.declared_settings}
    twice = sorted(own & ENGINE_KEYS)
    if twice:
        return (f"method {cls.name!r} declares the engine's keys {twice} in its Settings; "
                "fix their values in `task_overrides`")
    untyped = sorted(set(cls.task_overrides) - ENGINE_KEYS)
    if untyped:
        return (f"method {cls.name!r} overrides {untyped} in task_overrides, which are no "
                "engine keys (benchsuite.running.config.Settings); declare its own keys in "
                "Settings")
    for trait, keys in (("accuracy_knob", (cls.accuracy_knob,) if cls.accuracy_knob else ()),
                        ("inner_step_keys", cls.inner_step_keys)):
        unknown = sorted(set(keys) - own - ENGINE_KEYS)
        if unknown:
            return f"method {cls.name!r}: {trait} names {unknown}, which it does not declare"
    return None


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
