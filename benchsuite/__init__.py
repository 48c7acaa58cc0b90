"""benchsuite: a benchmark suite for hypergradient (bilevel) meta-learning methods.

The engine is layered, each floor built only on those below it: `core` (the contract
and the functional core), `blocks` (building blocks for plugins) and `storage` (records),
`running` (planning, trials, executors), `reporting` (leaderboards), and `cli` on top
(docs/architecture.md).

The builtin plugins live in the checkout's top-level `methods/` and `tasks/` folders and
install as `benchsuite.methods` / `benchsuite.tasks` (pyproject's package-dir), never as
generic top-level `methods` / `tasks` packages.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
_PLUGIN_PACKAGES = {"benchsuite.methods": "methods", "benchsuite.tasks": "tasks"}


def _version() -> str:
    """The installed distribution's version; from a checkout that is not installed, the
    version pyproject.toml declares."""
    try:
        return version("benchsuite")
    except PackageNotFoundError:
        try:
            with open(_CHECKOUT / "pyproject.toml", "rb") as file:
                return str(tomllib.load(file)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__ = _version()


class _CheckoutPlugins(importlib.abc.MetaPathFinder):
    """Maps `benchsuite.methods` / `benchsuite.tasks` onto the checkout's `methods/` and
    `tasks/` when benchsuite runs from a source tree that is not installed
    (`PYTHONPATH=.`), as the installed package-dir mapping does."""

    def find_spec(self, fullname, path=None, target=None):
        folder = _PLUGIN_PACKAGES.get(fullname)
        if folder is None or not (_CHECKOUT / folder / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, _CHECKOUT / folder / "__init__.py",
            submodule_search_locations=[str(_CHECKOUT / folder)])


def _map_checkout_plugins() -> None:
    # an install (editable or wheel) already resolves them; only a bare tree needs this
    if importlib.util.find_spec("benchsuite.methods") is None:
        sys.meta_path.append(_CheckoutPlugins())


_map_checkout_plugins()


def __getattr__(name: str):
    # `from benchsuite import results`, the results API, without importing pandas for
    # every other use of the package
    if name == "results":
        return importlib.import_module("benchsuite.storage.results")
    raise AttributeError(f"module 'benchsuite' has no attribute {name!r}")
