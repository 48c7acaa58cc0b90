"""The catalog of `benchsuite list` read from the plugins' source, without importing them
(and so without torch): the same plain data as `catalog.build`, which imports them.

Each plugin file is read (benchsuite.running.source_reader) and its classes registered by
the registry's rules (benchsuite.running.plugin_rules): a Method or Task subclass defined
in the file, with a `name`, that passes the same checks. What the registry gets from
running the class statements is read the way Python computes it: a class's attributes
through its bases, wherever they are defined; the `__init_subclass__` of the contract,
which adopts a class's typed `Settings` (benchsuite.core.settings.adopt, through the same
`adopted` and `field_setting`); and each method's `incompatibility` with each task, by
interpreting the class method.

A plugin the reader cannot settle from its text raises `Unresolvable`, and the catalog
imports the plugins instead (`catalog.catalog`).
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchsuite.core import settings
from benchsuite.running.catalog import listing
from benchsuite.running.plugin_rules import method_problem, plugin_paths, task_problem
from benchsuite.running.source_eval import Named, Unresolvable
from benchsuite.running.source_reader import Bound, ClassScope, ReadClass, Reader, ReadModule

CONTRACT = "benchsuite.core.contract"
"""The module whose Method and Task a plugin class derives from."""
PLUGIN_STATEMENTS = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.Assign,
                     ast.AnnAssign)
"""What a plugin file's top level may hold for the reader to know what loading it does.
The engine's modules a plugin imports are not held to it: the test of the built-in
catalog against the imported one (tests/test_static_catalog.py) is what keeps them
readable."""
_ABSENT = object()


def read(extra_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The catalog of the built-in plugins and those in `extra_dirs`, read from source."""
    try:
        return _read(extra_dirs)
    except RecursionError:  # code nested deeper than the reader follows
        raise Unresolvable("code nested too deep to read") from None


def _read(extra_dirs: Sequence[str | Path]) -> dict[str, Any]:
    reader = Reader({settings.adopt: _adopt})
    contract = reader.module(CONTRACT)
    bases = (contract.attribute("Method"), contract.attribute("Task"))
    kinds = contract.attribute("PROBLEM_KINDS")
    methods: dict[str, tuple[ClassView, Path]] = {}
    tasks: dict[str, tuple[ClassView, Path]] = {}
    unavailable: dict[str, str] = {}
    for path in plugin_paths(extra_dirs):
        module = reader.load(f"<plugin {path}>", path)
        for cls in _plugin_classes(reader, module, bases):
            view = ClassView(reader, cls)
            is_method = bases[0] in cls.mro()
            problem = method_problem(view) if is_method else task_problem(view, kinds)
            if problem:
                unavailable[str(path)] = problem
            elif is_method:
                _register(methods, view, path, (view.name, *view.aliases))
            else:
                _register(tasks, view, path, (view.name,))
    return listing(methods, tasks, unavailable)


def _plugin_classes(reader: Reader, module: ReadModule, bases: tuple[ReadClass, ...]
                    ) -> list[ReadClass]:
    """The classes the registry registers from `module`, in its order (by global name):
    defined there, a subclass of Method or Task but neither, with a `name`."""
    for node in module.tree.body:
        if not (isinstance(node, PLUGIN_STATEMENTS) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))):
            raise Unresolvable(f"{module.path}:{node.lineno}: a statement the reader does "
                               "not follow")
    found = []
    for name in sorted(module.names):
        if module.names[name][-1].how not in ("class", "assign"):
            continue  # an import or a function: no class defined here
        value = module.global_value(name)
        if not (isinstance(value, ReadClass) and value.module is module):
            continue
        value.check_decorators()  # else the name may be bound to what a decorator made
        if (value not in bases and reader.subclass_of(value, bases)
                and reader.lookup(value, "name", default=_ABSENT) is not _ABSENT):
            found.append(value)
    return found


def _register(table: dict[str, tuple[ClassView, Path]], view: ClassView, path: Path,
              names: tuple[str, ...]) -> None:
    for name in names:
        other = table.get(name)
        if other is not None and (other[1], other[0].read.qualname) != (path,
                                                                      view.read.qualname):
            raise Unresolvable(f"two plugins are named {name!r}")  # the registry says which
    for name in names:
        table[name] = (view, path)


class ClassView:
    """A read class seen as the catalog sees an imported one: its attributes by name, each
    a real value, and its class methods as functions of such views."""

    def __init__(self, reader: Reader, read: ReadClass):
        self.reader = reader
        self.read = read

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = self.reader.lookup(self.read, name)
        if isinstance(value, Bound):
            return lambda *args: _real(self.reader.call(
                value, [a.read if isinstance(a, ClassView) else a for a in args], {}))
        return _real(value)


def _real(value: Any) -> Any:
    """`value`, which must hold real values only (no read class or function)."""
    if isinstance(value, Named):
        raise Unresolvable("an attribute the catalog lists is not a plain value")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _real(key), _real(item)
    elif isinstance(value, tuple | list | set | frozenset):
        for item in value:
            _real(item)
    return value


# -- typed Settings (benchsuite.core.settings), read ------------------------------------
def _adopt(reader: Reader, cls: Any, own: Any) -> None:
    """settings.adopt(cls, own) on a read class, as the contract's __init_subclass__ calls
    it: the same keys, from the same `adopted`."""
    if not isinstance(cls, ReadClass) or not isinstance(own, str):
        raise Unresolvable("settings.adopt called on something other than a class")
    spec = reader.lookup(cls, "Settings", default=None)
    keys = [] if spec is None else _declared(reader, spec, f"{cls.name}.Settings")
    inherited = {s.name for base in cls.mro()[1:-1]  # created: read classes, then object
                 for s in reader.lookup(base, "declared_settings", default=())}
    cls.set["declared_settings"] = tuple(keys)
    if not keys:
        return
    written = cls.own(own) if cls.has_own(own) else None
    current = reader.lookup(cls, own)
    if not isinstance(current, Mapping) or not isinstance(written, Mapping | None):
        raise Unresolvable(f"class {cls.name}: {own} is not a dict")
    try:
        cls.set[own] = settings.adopted(cls.name, own, keys, inherited, written, current)
    except TypeError as error:  # the import fails with it: the registry reports it
        raise Unresolvable(str(error)) from None


def _declared(reader: Reader, spec: Any, label: str) -> list[settings.Setting]:
    """The keys a read `Settings` dataclass declares (settings.declared_in)."""
    if not isinstance(spec, ReadClass) or not spec.node.decorator_list or spec.node.bases:
        raise Unresolvable(f"{label}: not a plain dataclass the reader can read")
    spec.create()  # checks that its decorator is dataclass
    docs = settings.docstrings_at(spec.module.tree, spec.qualname)
    keys: list[settings.Setting] = []
    for position, node in enumerate(spec.node.body):
        if not isinstance(node, ast.AnnAssign):
            continue
        if not isinstance(node.target, ast.Name):
            raise Unresolvable(f"{label}: an annotated target that is no name")
        scope = ClassScope(spec, position)
        annotation = node.annotation
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            annotation = ast.parse(annotation.value, mode="eval").body
        hint = _real(reader.evaluate(annotation, scope))
        if hint is typing.ClassVar or typing.get_origin(hint) is typing.ClassVar:
            continue  # not a field
        if isinstance(hint, dataclasses.InitVar) or hint is dataclasses.KW_ONLY:
            raise Unresolvable(f"{label}: an InitVar or KW_ONLY field")
        default = (settings.MISSING if node.value is None
                   else _real(reader.evaluate(node.value, scope)))
        if type(default).__hash__ is None or any(k.name == node.target.id for k in keys):
            raise Unresolvable(f"{label}: a mutable default or a field declared twice")
        try:
            keys.append(settings.field_setting(label, node.target.id, hint, default, docs))
        except TypeError as error:  # the import fails with it: the registry reports it
            raise Unresolvable(str(error)) from None
    return keys
