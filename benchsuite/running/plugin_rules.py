"""Which files are plugin files and which plugin classes can be registered, decided without
importing torch: shared by the registry (benchsuite.running.registry, which imports the
plugins) and the catalog's source reader (benchsuite.running.static_catalog, which reads
them), so that both list the same plugins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import benchsuite.methods as builtin_methods  # the checkout's methods/ (pyproject package-dir)
import benchsuite.tasks as builtin_tasks  # the checkout's tasks/
from benchsuite.core.errors import UsageError
from benchsuite.running.config import ENGINE_KEYS, TASK_KEYS

REQUIRED_TASK_DEFAULTS = TASK_KEYS


def builtin_plugin_dirs() -> list[Path]:
    return [Path(builtin_methods.__file__).parent, Path(builtin_tasks.__file__).parent]


def plugin_paths(extra_dirs: Sequence[str | Path] = ()) -> list[Path]:
    """The plugin files, in the order they are loaded: each folder's `*.py` files by name,
    those starting with `_` left out."""
    paths = []
    for folder in [*builtin_plugin_dirs(), *map(Path, extra_dirs)]:
        if not folder.is_dir():
            raise UsageError(f"plugin folder {str(folder)!r} does not exist; pass a folder "
                             "holding method/task .py files")
        paths += [path for path in sorted(folder.glob("*.py"))
                  if not path.name.startswith("_")]
    return paths


def canonical_names(methods: Mapping[str, Any]) -> list[str]:
    """The names of the registered method classes `methods` (by name, aliases too) without
    the aliases: the set `--methods all` runs."""
    return sorted(name for name, cls in methods.items() if cls.name == name)


def task_problem(cls: Any, problem_kinds: Sequence[str]) -> str | None:
    """Why a task class cannot be registered: a bad kind, an engine key its defaults
    lack, or a key it does not declare once (benchsuite.running.config.Settings, its Settings)."""
    if cls.kind not in problem_kinds:
        return f"task {cls.name!r} has kind {cls.kind!r}; use one of {problem_kinds}"
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


def method_problem(cls: Any) -> str | None:
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
