"""Grid files: a `benchsuite run` written down as TOML (`benchsuite run --config FILE`).

A grid file holds the command's options under their names (`methods`, `tasks`, `seeds`,
`iterations`, `budget`, `jobs`, `out`, `data-root`, ...; `-` or `_` alike; a list of
names for `methods` and `tasks` is joined with commas) and settings in three tables:

    methods = "all"
    tasks = ["sinusoid", "quadratic"]
    seeds = 2

    [set]              # every trial's (as --set key=value)
    curve_points = 10

    [task.sinusoid]    # the sinusoid's trials (as --set sinusoid.key=value)
    iterations = 400

    [method.imaml]     # iMAML's trials (as --set imaml.key=value)
    iterations = 100

Settings layer `[set]` < `[task.*]` < `[method.*]` < the command line's `--set`, so a
method's own budget wins over its task's. An option given on the command line replaces
the file's. Values are checked as the command line's are: each option by the command's
own parser, each setting against the type of the value it replaces and its declaration
(benchsuite.running.planning.plan). Relative paths are relative to the working folder.

The grids the repository runs (the demo, the reference grids) are files of the package's
`grids/` folder, named by their stem (`--config demo`); `benchsuite run` without
arguments (or with options that do not say what to run: --jobs, --dry-run, ...) runs
`demo`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from benchsuite.core.errors import UsageError
from benchsuite.running.config import Override

DEMO = "demo"
"""The grid `benchsuite run` runs when given no argument."""
SELECTION = ("methods", "tasks", "protocol")
"""The options that say what to run: a command line with none of them (and no grid file)
runs the demo grid, with its other options applied over it."""
NONE = "(command line)"
"""The source of a run without a grid file."""
SETTING_TABLES = ("set", "task", "method")


@dataclass(frozen=True)
class Grid:
    """A grid file, read: where it came from, its options and its settings."""

    source: str
    options: dict[str, Any] = field(default_factory=dict)
    """Option name (the command's parameter name, e.g. `data_root`) → value as written."""
    overrides: tuple[Override, ...] = ()
    """The settings, in the order they apply (`[set]`, `[task.*]`, `[method.*]`)."""


def packaged() -> dict[str, Any]:
    """The package's grid files by name (importlib.resources: also from a wheel)."""
    folder = resources.files("benchsuite") / "grids"
    if not folder.is_dir():
        return {}
    return {Path(entry.name).stem: entry for entry in folder.iterdir()
            if entry.name.endswith(".toml")}


def locate(name: str) -> tuple[str, str]:
    """The text of the grid file `name` (a path, or the stem of a packaged grid) and how
    to name it in messages."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.read_text(), str(path)
    grids = packaged()
    if name in grids:
        return grids[name].read_text(), f"{name} ({grids[name]})"
    raise UsageError(f"--config {name!r} is neither a file nor a packaged grid; packaged "
                     f"grids: {', '.join(sorted(grids)) or 'none'}")


def read(name: str, parameters: dict[str, Any], context: Any) -> Grid:
    """The grid file `name` (see `locate`); `parameters` maps the command's option names
    to its parameters, which check and convert each option's value in `context` (the
    command's typer.Context)."""
    text, source = locate(name)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"grid file {source} is not valid TOML: {error}") from None
    options = {}
    for key, value in table.items():
        if key in SETTING_TABLES:
            continue
        option = key.replace("-", "_")
        if option not in parameters:
            valid = sorted(n.replace("_", "-") for n in parameters)
            raise UsageError(f"grid file {source}: unknown option {key!r}; valid: "
                             f"{', '.join(valid)}, and the tables "
                             f"{', '.join(f'[{t}]' for t in SETTING_TABLES)}")
        options[option] = _option_value(parameters[option], value, key, source, context)
    return Grid(source, options, tuple(_overrides(table, source)))


def _option_value(parameter, value: Any, key: str, source: str, context: Any) -> Any:
    """`value` as the command line would give it, checked by the option's own type."""
    from typer import BadParameter

    if key in ("methods", "tasks") and isinstance(value, list):
        value = ",".join(map(str, value))
    if parameter.multiple and not isinstance(value, list):
        value = [value]
    if isinstance(value, dict):
        raise UsageError(f"grid file {source}: {key} must be a value, not a table")
    try:
        return parameter.process_value(context, value)
    except BadParameter as error:
        raise UsageError(f"grid file {source}: bad {key} {value!r}: "
                         f"{error.format_message()}") from None


def _overrides(table: dict[str, Any], source: str) -> list[Override]:
    overrides = []
    common = table.get("set", {})
    if not isinstance(common, dict):
        raise UsageError(f"grid file {source}: [set] must be a table of settings")
    overrides += [_setting(None, key, value, source) for key, value in common.items()]
    for kind in ("task", "method"):
        scopes = table.get(kind, {})
        if not isinstance(scopes, dict) or not all(isinstance(v, dict)
                                                    for v in scopes.values()):
            raise UsageError(f"grid file {source}: write a {kind}'s settings as "
                             f"[{kind}.NAME] tables")
        for scope, settings in scopes.items():
            overrides += [_setting(scope, key, value, source, kind)
                          for key, value in settings.items()]
    return overrides


def _setting(scope: str | None, key: str, value: Any, source: str,
             kind: str | None = None) -> Override:
    if isinstance(value, dict):
        where = f"[{kind}.{scope}]" if scope else "[set]"
        raise UsageError(f"grid file {source}: {where} {key} must be a value, not a table")
    return Override(scope, key, value=value, kind=kind)
