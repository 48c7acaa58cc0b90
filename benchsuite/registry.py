"""Plugin discovery: every `*.py` file in `methods/`, `tasks/` and any `--plugins DIR` is
loaded and its Method / Task subclasses registered under their `name` (and aliases).

Adding a method or a task means adding one file; nothing here names one. A file whose
import fails is listed as unavailable with its error instead of breaking the listing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import methods as builtin_methods
import tasks as builtin_tasks
from benchsuite.contract import PROBLEM_KINDS, Method, Task
from benchsuite.errors import UsageError

REQUIRED_TASK_DEFAULTS = ("inner_steps", "inner_lr", "meta_batch", "iterations", "meta_lr",
                          "eval_inner_steps")


@dataclass
class Plugin:
    cls: type
    path: Path
    source_hash: str


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


def discover(extra_dirs: list[str | Path] = ()) -> Registry:
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


def source_hash(module, path: Path) -> str:
    """Hash of a plugin file and of the plugin files it builds on (a method subclassing
    another method's class): editing either invalidates the plugin's results."""
    folders = {*builtin_plugin_dirs(), path.parent}
    files = {path}
    for value in vars(module).values():
        origin = getattr(inspect.getmodule(value), "__file__", None)
        if origin and Path(origin).parent in folders and not Path(origin).name.startswith("_"):
            files.add(Path(origin))
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def load_plugin_file(path: Path, registry: Registry) -> None:
    module_name = f"benchsuite_plugin_{path.parent.name}_{path.stem}_{file_hash(path)}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as error:  # a broken plugin must not hide the others
        registry.unavailable[str(path)] = f"{type(error).__name__}: {error}"
        return
    code = source_hash(module, path)
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module_name or not hasattr(cls, "name"):
            continue
        if issubclass(cls, Method) and cls is not Method:
            _register(registry.methods, cls, path, code, (cls.name, *cls.aliases), registry)
        elif issubclass(cls, Task) and cls is not Task:
            problem = _task_problem(cls)
            if problem:
                registry.unavailable[str(path)] = problem
                continue
            _register(registry.tasks, cls, path, code, (cls.name,), registry)


def _task_problem(cls: type[Task]) -> str | None:
    if cls.kind not in PROBLEM_KINDS:
        return f"task {cls.name!r} has kind {cls.kind!r}; use one of {PROBLEM_KINDS}"
    missing = [k for k in REQUIRED_TASK_DEFAULTS if k not in cls.defaults]
    if missing:
        return f"task {cls.name!r} lacks defaults {missing}"
    return None


def _register(table, cls, path, code, names, registry):
    plugin = Plugin(cls=cls, path=path, source_hash=code)
    for name in names:
        if name in table and table[name].path != path:
            registry.unavailable[str(path)] = (
                f"name {name!r} is already taken by {table[name].path}")
            return
    for name in names:
        table[name] = plugin
