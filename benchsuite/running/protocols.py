"""Protocols: where a trial's settings come from, each named and cited.

A protocol is a set of config settings with its source. They are data: TOML files in
protocol folders, read at planning; their settings reach the trial's config, and so its
identity. The package's own folder (`benchsuite/protocols/`, package data read with
importlib.resources, so an installed wheel has it) holds the protocols the suite ships;
the user's folder ($BENCHSUITE_PROTOCOLS, else ~/.config/benchsuite/protocols) holds
tuned and user protocols and wins over the package's for the same pair or name. A folder
has three kinds:

- **paper** (`paper/<method>.toml`): a method's settings from its own paper or code, one
  table per task: `[omniglot]` with `source`, optional `deviations` (what our run cannot
  follow, said plainly) and a `settings` table;
- **tuned** (`tuned/<task>.toml`, written by `benchsuite tune`): for a method without a
  paper protocol on that task, the grid point that scored best on validation episodes,
  with the grid, every score, the budget and provenance;
- **named** (`named/<name>.toml`, chosen with `benchsuite run --protocol NAME`): a whole
  experiment of a paper or library: one task, its methods, settings for all of them and
  per method (`[methods.<name>]` tables).

A trial without any of these runs on its task's defaults and says so. Layering (see
benchsuite.running.config): the protocol's settings override the task's defaults and the method's
own hyperparameter defaults; command-line options and `--set` override the protocol.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from benchsuite.core.errors import UsageError

PACKAGED = resources.files("benchsuite").joinpath("protocols")
"""The protocols the package ships (package data)."""
USER_VARIABLE = "BENCHSUITE_PROTOCOLS"
DEFAULT_USER_FOLDER = Path("~/.config/benchsuite/protocols")


def user_folder() -> Path:
    """The user's protocol folder: $BENCHSUITE_PROTOCOLS, else
    ~/.config/benchsuite/protocols (where `benchsuite tune` writes by default)."""
    return Path(os.environ.get(USER_VARIABLE) or DEFAULT_USER_FOLDER).expanduser()

KINDS = ("paper", "tuned", "named", "defaults", "floor")
SETTING_TYPES = (bool, int, float, str, list)


@dataclass(frozen=True)
class Protocol:
    """A named, cited set of settings for the trials of one or more (method, task) pairs."""

    kind: str
    """One of KINDS: paper, tuned, named; `defaults` for a trial on its task's defaults,
    `floor` for a baseline that defines its own settings (scratch, transfer)."""
    name: str
    """`<method>/<task>` for paper and tuned protocols, the file's name for named ones."""
    source: str
    """Where the settings come from: paper, table, repository file; for tuned ones, the
    tuning run."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Config keys and the values the protocol fixes."""
    deviations: str = ""
    """What the run does differently from the source, and why (compute, data)."""
    budget: int | None = None
    """Tuned protocols: the number of configurations tried."""

    @property
    def label(self) -> str:
        """How the leaderboard marks a row run under this protocol."""
        return {"paper": "paper protocol", "tuned": f"tuned (budget {self.budget})",
                "named": f"protocol {self.name}", "floor": "floor",
                "defaults": "task defaults"}[self.kind]

    def as_record(self) -> dict[str, Any]:
        """What a record stores about its protocol (`record["protocol"]`)."""
        return {"kind": self.kind, "name": self.name, "label": self.label,
                "source": self.source, "deviations": self.deviations}


@dataclass(frozen=True)
class NamedProtocol:
    """An experiment selected with `--protocol NAME`: one task, its methods, settings."""

    name: str
    task: str
    methods: tuple[str, ...]
    source: str
    settings: Mapping[str, Any]
    """Settings for every trial of the protocol (task and shared method keys)."""
    method_settings: Mapping[str, Mapping[str, Any]]
    """Per-method settings, applied after `settings`."""
    deviations: str = ""
    description: str = ""
    floors: tuple[str, ...] = ()
    """Floors run beside the methods, on the protocol's task, episode and evaluation
    settings (`for_floor`), with their own step size: what the methods must beat."""

    @property
    def runs(self) -> tuple[str, ...]:
        """Every method the protocol runs: its methods, then its floors."""
        return self.methods + self.floors

    def for_method(self, method: str) -> Protocol:
        return Protocol("named", self.name, self.source,
                        {**self.settings, **self.method_settings.get(method, {})},
                        self.deviations)

    def for_floor(self, method: str, declared: Collection[str]) -> Protocol:
        """The floor `method` on the protocol's settings among the keys it has
        (`declared`: its task's, the engine's and its own); the methods' keys (e.g. a
        proximal weight) are theirs."""
        settings = {k: v for k, v in self.settings.items() if k in declared}
        return Protocol("floor", f"{method}/{self.name}",
                        f"the floor on protocol {self.name}'s settings "
                        f"({', '.join(sorted(settings))}), its step size its own", settings)


@dataclass
class Protocols:
    """Every protocol under a protocols/ folder, looked up by (method, task)."""

    paper: dict[tuple[str, str], Protocol] = field(default_factory=dict)
    tuned: dict[tuple[str, str], Protocol] = field(default_factory=dict)
    named: dict[str, NamedProtocol] = field(default_factory=dict)

    def for_trial(self, method: str, task: str, *, floor: bool = False) -> Protocol:
        """The protocol a (method, task) trial runs under without --protocol: its paper's,
        else the tuned one, else the task's defaults (a floor defines its own)."""
        if (method, task) in self.paper:
            return self.paper[method, task]
        if (method, task) in self.tuned:
            return self.tuned[method, task]
        if floor:
            return Protocol("floor", f"{method}/{task}",
                            "the floor's own settings (its step size chosen on validation)")
        return Protocol("defaults", f"{method}/{task}",
                        "the task's defaults: no paper protocol for this pair, not tuned")

    def named_protocol(self, name: str) -> NamedProtocol:
        if name not in self.named:
            valid = ", ".join(sorted(self.named)) or "none"
            raise UsageError(f"unknown --protocol {name!r}; valid: {valid} "
                             "(`benchsuite list` shows them)")
        return self.named[name]


def load(*folders: Path | Traversable) -> Protocols:
    """Every protocol in `folders`, later folders winning for the same pair or name
    (default: the package's, then the user's); a malformed file is a usage error naming
    it. A folder that does not exist holds none."""
    protocols = Protocols()
    for folder in folders or (PACKAGED, user_folder()):
        for path in _files(folder, "paper"):
            stem = path.name.removesuffix(".toml")
            for task, table in _read(path).items():
                protocols.paper[stem, task] = _protocol("paper", f"{stem}/{task}", table,
                                                        path)
        for path in _files(folder, "tuned"):
            stem = path.name.removesuffix(".toml")
            for method, table in _read(path).items():
                protocols.tuned[method, stem] = _protocol("tuned", f"{method}/{stem}",
                                                          table, path)
        for path in _files(folder, "named"):
            stem = path.name.removesuffix(".toml")
            protocols.named[stem] = _named(stem, _read(path), path)
    return protocols


def _files(folder: Path | Traversable, kind: str) -> list[Traversable]:
    """The *.toml files of `folder`/`kind`, by name."""
    sub = folder.joinpath(kind)
    if not sub.is_dir():
        return []
    return sorted((p for p in sub.iterdir() if p.name.endswith(".toml") and p.is_file()),
                  key=lambda p: p.name)


def _read(path: Traversable) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"protocol file {path} is not valid TOML: {error}") from None


def _protocol(kind: str, name: str, table: Any, path: Traversable) -> Protocol:
    if not isinstance(table, dict) or not isinstance(table.get("source"), str):
        raise UsageError(f"protocol {name} in {path} needs a `source` string")
    budget = table.get("budget")
    if kind == "tuned" and not isinstance(budget, int):
        raise UsageError(f"tuned protocol {name} in {path} needs an integer `budget`")
    return Protocol(kind, name, table["source"], _settings(table.get("settings", {}), name,
                                                           path),
                    table.get("deviations", ""), budget)


def _named(name: str, table: dict[str, Any], path: Traversable) -> NamedProtocol:
    for key, kind in (("task", str), ("source", str), ("methods", list)):
        if not isinstance(table.get(key), kind):
            raise UsageError(f"named protocol {path} needs `{key}` ({kind.__name__})")
    method_tables = table.get("method_settings", {})
    floors = table.get("floors", [])
    if not isinstance(floors, list) or not all(isinstance(f, str) for f in floors):
        raise UsageError(f"named protocol {path}: `floors` must be a list of method names")
    unknown = set(method_tables) - set(table["methods"])
    if unknown:
        raise UsageError(f"named protocol {path}: settings for methods it does not run: "
                         f"{', '.join(sorted(unknown))}")
    return NamedProtocol(
        name=name, task=table["task"], methods=tuple(table["methods"]),
        source=table["source"], settings=_settings(table.get("settings", {}), name, path),
        method_settings={m: _settings(s, f"{name}.{m}", path)
                         for m, s in method_tables.items()},
        deviations=table.get("deviations", ""), description=table.get("description", ""),
        floors=tuple(floors))


def _settings(table: Any, name: str, path: Traversable) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UsageError(f"protocol {name} in {path}: `settings` must be a table")
    settings = {}
    for key, value in table.items():
        if not isinstance(value, SETTING_TYPES) or (isinstance(value, float)
                                                    and not math.isfinite(value)):
            raise UsageError(f"protocol {name} in {path}: setting {key} = {value!r} is not "
                             "a finite number, a boolean, a string or a list")
        settings[key] = tuple(value) if isinstance(value, list) else value
    return settings
