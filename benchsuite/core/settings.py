"""Typed plugin settings: a plugin's own config keys as a dataclass, one docstring a field.

A method or a task may declare the keys it adds to a trial's config as a nested dataclass
named `Settings`, in the manner of CleanRL's `Args`: each field's annotation says what a
value must be, its default is the paper's value, and the string literal under it says
what the key means:

    @dataclass(frozen=True)
    class Settings:
        proximal_lambda: Annotated[float, Positive] = 2.0
        \"\"\"λ, the weight of the proximal term λ/2 ‖θ − φ‖² (Eq. 4).\"\"\"
        inner_optimizer: Literal["sgd", "adam"] = "sgd"
        \"\"\"The inner loop's optimiser.\"\"\"

The registry reads it when it loads the plugin (`declared`): its defaults become the
method's `hyperparameters` (or are added to the task's `defaults`), and planning checks
every resolved value against its field (`problems`): the type (a number must be finite, a
bool is not a number), a `Literal`'s choices, and the constraints in `Annotated`
(`Positive`, `AtLeast(n)`, `Fraction`). A value that fails stops the run at planning with
one line. `describe` gives each key with its type, default and docstring, for
`benchsuite list --settings NAME` and the docs.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

__all__ = ["Annotated", "AtLeast", "Fraction", "Given", "Literal", "Positive", "Setting",
           "adopt", "declared", "declared_in", "describe", "problems"]


@dataclass(frozen=True)
class Given:
    """The default of a key whose value does not come from its declaration: the task's
    defaults, the command line, another key. Such a key enters a trial's config only when
    that source sets it (`defaults` leaves it out)."""

    text: str

    def __repr__(self) -> str:
        return f"({self.text})"


@dataclass(frozen=True)
class AtLeast:
    """A number no smaller than `least`."""

    least: float

    @property
    def text(self) -> str:
        return f"≥ {self.least:g}"

    def problem(self, value: Any) -> str | None:
        return None if value >= self.least else f"must be at least {self.least:g}"


@dataclass(frozen=True)
class _Positive:
    text = "> 0"

    def problem(self, value: Any) -> str | None:
        return None if value > 0 else "must be positive"


@dataclass(frozen=True)
class _Fraction:
    text = "in [0, 1]"

    def problem(self, value: Any) -> str | None:
        return None if 0 <= value <= 1 else "must lie in [0, 1]"


Positive = _Positive()
"""A number greater than zero."""
Fraction = _Fraction()
"""A number in [0, 1]."""


@dataclass(frozen=True)
class Setting:
    """One declared key: its name, what a value must be, its default and its meaning."""

    name: str
    kind: Any
    """The annotation without its constraints: int, float, bool, str, a Literal, a tuple."""
    default: Any
    doc: str
    constraints: tuple[Any, ...] = ()

    @property
    def type_text(self) -> str:
        if get_origin(self.kind) is Literal:
            return " | ".join(repr(c) for c in get_args(self.kind))
        if get_origin(self.kind) is tuple:
            return f"tuple of {get_args(self.kind)[0].__name__}"
        return ", ".join([getattr(self.kind, "__name__", str(self.kind)),
                          *(constraint.text for constraint in self.constraints)])

    def problem(self, value: Any) -> str | None:
        """Why `value` cannot be this key's value, or None."""
        wrong = _type_problem(self.kind, value)
        if wrong:
            return f"{self.name} {wrong} (got {value!r})"
        for constraint in self.constraints:
            reason = constraint.problem(value)
            if reason:
                return f"{self.name} {reason} (got {value!r})"
        return None


def _type_problem(kind: Any, value: Any) -> str | None:
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        return None if value in choices else (
            "must be one of " + ", ".join(str(c) for c in choices))
    if get_origin(kind) is tuple:
        item = get_args(kind)[0]
        if not isinstance(value, tuple):
            return "must be a comma-separated list"
        bad = [v for v in value if _type_problem(item, v)]
        return f"must hold {item.__name__} values only" if bad else None
    if kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if kind is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else (
            "must be a whole number")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number"
    if kind is str:
        return None if isinstance(value, str) else "must be a string"
    return None


def declared(cls: type) -> list[Setting]:
    """The keys `cls.Settings` declares (none if it has no `Settings`; a subclass inherits
    its parent's), in field order, with the docstrings read from the source file of the
    module that defines `Settings` (plugins are loaded as registered modules)."""
    spec = getattr(cls, "Settings", None)
    if spec is None:
        return []
    if not (isinstance(spec, type) and dataclasses.is_dataclass(spec)):
        raise TypeError(f"{cls.__name__}.Settings must be a dataclass")
    return declared_in(spec, f"{cls.__name__}.Settings")


def declared_in(spec: type, label: str) -> list[Setting]:
    """The keys the dataclass `spec` declares (`declared`); `label` names it in errors."""
    module = sys.modules[spec.__module__]
    hints = get_type_hints(spec, globalns=vars(module), include_extras=True)
    docs = field_docstrings(spec, Path(module.__file__ or ""))
    return [field_setting(label, field.name, hints[field.name],
                          MISSING if field.default is dataclasses.MISSING else field.default,
                          docs)
            for field in dataclasses.fields(spec)]


MISSING: Any = object()
"""The default of a field that has none (`field_setting`)."""


def field_setting(label: str, name: str, hint: Any, default: Any,
                  docs: Mapping[str, str]) -> Setting:
    """The key a dataclass field declares, from its resolved annotation `hint`, its
    default (MISSING if none) and the docstrings of its class (`field_docstrings`); shared
    with the catalog's source reader (benchsuite.running.static_catalog)."""
    if default is MISSING:
        raise TypeError(f"{label}.{name} needs a default (the paper's value)")
    kind, constraints = hint, ()
    if get_origin(kind) is Annotated:
        kind, *rest = get_args(kind)
        constraints = tuple(rest)
    if not docs.get(name):
        raise TypeError(f"{label}.{name} needs a docstring (a string literal "
                        "under the field) saying what it means")
    return Setting(name, kind, default, docs[name], constraints)


def field_docstrings(spec: type, path: Path) -> dict[str, str]:
    """The string literal under each annotated field of the class `spec`, read from the
    source file at `path` (the class found at its qualified name, Outer.Settings)."""
    return docstrings_at(ast.parse(Path(path).read_text()), spec.__qualname__)


def docstrings_at(tree: ast.Module, qualname: str) -> dict[str, str]:
    """The string literal under each annotated field of the class at `qualname` in the
    module `tree`."""
    body = _class_body(tree, qualname)
    docs = {}
    for node, after in zip(body, [*body[1:], None]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _class_body(tree: ast.Module, qualname: str) -> list[ast.stmt]:
    """The statements of the class at `qualname` (Outer.Inner) in the module `tree`."""
    scope: list[ast.stmt] = tree.body
    for name in qualname.split("."):
        node = next((n for n in scope if isinstance(n, ast.ClassDef) and n.name == name),
                    None)
        if node is None:
            return []
        scope = node.body
    return scope


def adopt(cls: type, own: str) -> None:
    """Make `cls.Settings` (its own or a parent's) the source of the plugin's keys: their
    defaults are merged into the dict attribute `own` ("hyperparameters" of a method, the
    `defaults` of a task), where config resolution reads them, and the declared keys are
    kept as `cls.declared_settings`. Keys a parent's Settings declared that this class's
    do not are dropped. Raises TypeError for a malformed declaration or a key the class
    writes both in its Settings and in `own`. Called for every Method and Task subclass
    when it is defined (contract.py), so a class is complete however it is imported."""
    keys = declared(cls)
    inherited = {s.name for base in cls.__mro__[1:]
                 for s in getattr(base, "declared_settings", ())}
    cls.declared_settings = tuple(keys)  # type: ignore[attr-defined]
    if keys:
        setattr(cls, own, adopted(cls.__name__, own, keys, inherited, vars(cls).get(own),
                                  getattr(cls, own)))


def adopted(name: str, own: str, keys: list[Setting], inherited: set[str],
            written: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, Any]:
    """The dict attribute `own` of the class `name` that declares `keys` (`adopt`):
    `written` is the dict its own body sets (None if it sets none), `current` the one it
    has before adoption, `inherited` the keys its bases declared; shared with the
    catalog's source reader (benchsuite.running.static_catalog)."""
    names = {s.name for s in keys}
    if written is not None:
        twice = (set(written) & names) - inherited  # a parent's adopted dict, copied, is not
        if twice:
            raise TypeError(f"{name} declares {', '.join(sorted(twice))} both in "
                            f"Settings and in {own}: keep one")
    base = written if written is not None else current
    return {**{k: v for k, v in base.items() if k not in inherited - names},
            **defaults(keys)}


def defaults(settings: list[Setting]) -> dict[str, Any]:
    """The keys and defaults a config starts from (those with a `Given` default left out)."""
    return {s.name: s.default for s in settings if not isinstance(s.default, Given)}


def problems(settings: Iterable[Setting], config: Mapping[str, Any]) -> list[str]:
    """One line per declared key whose resolved value does not fit its field."""
    found = []
    for setting in settings:
        if setting.name in config:
            reason = setting.problem(config[setting.name])
            if reason:
                found.append(reason)
    return found


def describe(settings: Iterable[Setting]) -> list[list[str]]:
    """Rows of key, type, default, meaning."""
    return [[s.name, s.type_text, repr(s.default), s.doc] for s in settings]

