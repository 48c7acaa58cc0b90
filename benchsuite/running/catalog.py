"""What `benchsuite list` shows, read without importing torch.

Listing the plugins by importing them (their classes, their typed Settings, their
`incompatibility`) imports torch and the data libraries: seconds and a gigabyte. So the
listing is read from the plugins' source (benchsuite.running.static_catalog: the same
plain data, torch never imported), and only a plugin the source reader cannot settle
makes it import them (`build`). It is kept as JSON in the cache folder
($BENCHSUITE_CACHE, else ~/.cache/benchsuite) under a key that hashes the bytes of every
engine and plugin file it was made from (`catalog`): editing, adding or removing any of
them makes it anew, and a `list` after that only reads the file. The protocols are TOML
and are read on every call.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import benchsuite
from benchsuite.core.errors import UsageError

CACHE_VARIABLE = "BENCHSUITE_CACHE"
DEFAULT_CACHE = Path("~/.cache/benchsuite")
ENGINE = Path(benchsuite.__file__).resolve().parent
CHECKOUT = ENGINE.parent
BUILTIN_DIRS = (CHECKOUT / "methods", CHECKOUT / "tasks")
"""The built-in plugin folders of a checkout (an installed wheel keeps them inside the
package folder, which ENGINE covers)."""
SETTINGS_HEADER = ["key", "type", "default", "source", "meaning"]


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_VARIABLE) or DEFAULT_CACHE).expanduser()


def source_files(extra_dirs: Sequence[Path]) -> list[Path]:
    """Every file the catalog is built from: the engine's modules and the plugin files."""
    for folder in extra_dirs:
        if not Path(folder).is_dir():
            raise UsageError(f"plugin folder {str(folder)!r} does not exist; pass a folder "
                             "holding method/task .py files")
    folders = [folder for folder in BUILTIN_DIRS if folder.is_dir()]
    files = sorted(ENGINE.rglob("*.py"))
    for folder in [*folders, *map(Path, extra_dirs)]:
        files += sorted(Path(folder).resolve().glob("*.py"))
    return files


def catalog_key(extra_dirs: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"{benchsuite.__version__} {sys.version}".encode())
    for path in source_files(extra_dirs):
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def catalog(extra_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """The listing of the built-in plugins and those in `extra_dirs`: from the cache when
    it was made from the same files, else read from their source (or, where that cannot
    be settled, built by importing them) and cached."""
    path = cache_folder() / f"catalog-{catalog_key(extra_dirs)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    from benchsuite.running import static_catalog
    from benchsuite.running.source_eval import Unresolvable

    try:
        data = static_catalog.read(extra_dirs)
    except Unresolvable:
        data = build(extra_dirs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(path)
    except OSError:  # a read-only cache: the next call builds it again
        pass
    return data


def build(extra_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """The listing as plain data, from the imported plugins (benchsuite.running.registry)."""
    from benchsuite.running import registry as plugin_registry

    registry = plugin_registry.discover(extra_dirs)
    return listing({n: (p.cls, p.path) for n, p in registry.methods.items()},
                   {n: (p.cls, p.path) for n, p in registry.tasks.items()},
                   registry.unavailable)


def listing(methods: Mapping[str, tuple[Any, Path]], tasks: Mapping[str, tuple[Any, Path]],
            unavailable: Mapping[str, str]) -> dict[str, Any]:
    """The listing as plain data from the registered plugins: each name (a method's
    aliases too) with its class and file. The classes are imported (`build`) or read from
    source (benchsuite.running.static_catalog), with the same attributes."""
    from benchsuite.running import config
    from benchsuite.running.plugin_rules import canonical_names

    method_names = canonical_names({n: cls for n, (cls, _) in methods.items()})
    task_names = sorted(tasks)
    engine = [_row(s, "engine") for s in config.ENGINE_SETTINGS]
    return {
        "methods": [{"name": name, "aliases": list(cls.aliases),
                     "kinds": sorted(cls.supports), "paper": cls.paper, "path": str(path),
                     "settings": [_method_row(row, cls) for row in engine]
                     + [_row(s, "method") for s in cls.declared_settings]}
                    for name, (cls, path) in ((n, methods[n]) for n in method_names)],
        "tasks": [{"name": name, "kind": cls.kind, "metric": cls.metric,
                   "higher_is_better": cls.higher_is_better, "paper": cls.paper,
                   "path": str(path), "defaults": _plain(cls.defaults),
                   "quick": _plain(cls.quick),
                   "settings": [_task_row(row, cls) for row in engine]
                   + [_row(s, "task") for s in cls.declared_settings]}
                  for name, (cls, path) in ((n, tasks[n]) for n in task_names)],
        "compatible": {t: {m: methods[m][0].incompatibility(tasks[t][0])
                           for m in method_names} for t in task_names},
        "unavailable": dict(unavailable),
    }


def _row(setting, source: str) -> list[str]:
    return [setting.name, setting.type_text, repr(setting.default), source, setting.doc]


def _task_row(row: list[str], task_cls) -> list[str]:
    """An engine key's row for a task: the task's value as the default where it sets one
    (and its quick budget's beside it); the source stays the key's declaration."""
    key = row[0]
    if key not in task_cls.defaults:
        return row
    default = repr(task_cls.defaults[key])
    if key in task_cls.quick:
        default += f" (quick: {task_cls.quick[key]!r})"
    return [key, row[1], default, row[3], row[4]]


def _method_row(row: list[str], method_cls) -> list[str]:
    """An engine key's row for a method: the value the method fixes, if it fixes one."""
    key = row[0]
    if key == "iterations" and not method_cls.meta_trains:
        return [key, row[1], "0 (no training)", row[3], row[4]]
    if key not in method_cls.task_overrides:
        return row
    return [key, row[1], f"{method_cls.task_overrides[key]!r} (the method's)", row[3], row[4]]


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def plugin(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The catalog entry of the method (or alias) or task `name`."""
    for entry in data["methods"]:
        if name == entry["name"] or name in entry["aliases"]:
            return entry
    for entry in data["tasks"]:
        if name == entry["name"]:
            return entry
    valid = sorted([*(m["name"] for m in data["methods"]),
                    *(a for m in data["methods"] for a in m["aliases"]),
                    *(t["name"] for t in data["tasks"])])
    raise UsageError(f"unknown method or task {name!r}; valid: {', '.join(valid)}")


# -- rendering ----------------------------------------------------------------------------
WIDTH = 100
"""The columns `benchsuite list` fits in (`--wide`: no limit)."""


def _table(rows: list[list[Any]], header: list[str], widths: list[int | None],
           wide: bool) -> str:
    from tabulate import tabulate

    return tabulate(rows, header, disable_numparse=True,
                    maxcolwidths=None if wide else widths)


def settings_table(data: dict[str, Any], name: str, *, wide: bool = False) -> str:
    """Every key a trial of the method or task `name` reads: the engine's and its own,
    with type, default, source and meaning (a method's trial also reads its task's
    keys: `--settings TASK`)."""
    entry = plugin(data, name)
    note = ("" if "kind" in entry else
            "\n(a trial also reads its task's keys: benchsuite list --settings TASK)")
    return (f"{entry['name']} ({entry['path']})\n"
            + _table(entry["settings"], SETTINGS_HEADER, [18, 14, 16, 8, 36], wide) + note)


def render(data: dict[str, Any], protocols, *, wide: bool = False) -> str:
    """The methods, tasks, compatible pairs and protocols, in WIDTH columns unless
    `wide`."""
    names = [m["name"] for m in data["methods"]]
    parts = ["Methods\n" + _table(
        [[m["name"], ", ".join(m["aliases"]), ", ".join(m["kinds"]), m["paper"]]
         for m in data["methods"]],
        ["method", "aliases", "problem kinds", "paper"], [16, 8, 21, 45], wide)]
    rows = []
    for task in data["tasks"]:
        d = task["defaults"]
        protocol = (f"{d['inner_steps']} inner steps, α={d['inner_lr']}, meta-batch "
                    f"{d['meta_batch']}, {d['iterations']} iterations")
        for key in ("ways", "shots"):
            if key in d:
                protocol = f"{key} {d[key]}, " + protocol
        rows.append([task["name"], task["kind"],
                     f"{task['metric']} ({'↑' if task['higher_is_better'] else '↓'})",
                     protocol])
    parts.append("Tasks\n" + _table(rows, ["task", "problem kind", "metric",
                                           "paper defaults"], [15, 20, 14, 40], wide))
    compatible = data["compatible"]
    if wide:
        grid = [[t, *("yes" if compatible[t][m] is None else "n/a" for m in names)]
                for t in compatible]
        parts.append("Compatible pairs\n" + _table(grid, ["task \\ method", *names],
                                                   [], wide))
    else:
        rows = [[t, ", ".join(m for m in names if reasons[m] is None)]
                for t, reasons in compatible.items()]
        parts.append("Compatible pairs (--wide: as a grid)\n"
                     + _table(rows, ["task", "methods that run on it"], [15, 82], wide))
    rows = [[f"{method} × {task}", p.label, p.source]
            for (method, task), p in sorted({**protocols.paper, **protocols.tuned}.items())]
    parts.append("Protocols per method and task (others run on the task's defaults)\n"
                 + _table(rows, ["pair", "protocol", "source"], [26, 18, 50], wide))
    rows = [[name, n.task, ", ".join(n.runs), n.description or n.source]
            for name, n in sorted(protocols.named.items())]
    parts.append("Named protocols (benchsuite run --protocol NAME)\n"
                 + _table(rows, ["protocol", "task", "methods", "what"], [14, 9, 22, 48],
                          wide))
    parts += [f"unavailable plugin {path}: {error}"
              for path, error in data["unavailable"].items()]
    return "\n\n".join(parts)
