"""What a differential check reports, and the pieces every check shares.

A check runs the original implementation of a protocol (the published package, or the few
lines of a repository's code it needs, re-expressed and cited file:line) beside ours on
the same initial weights and the same batches, in float64, and reports:
- `settings`: each setting of the source, where the source sets it, its value there and
  ours (from the committed protocol file), and whether they agree;
- `differences`: measured relative differences of the quantities both compute (one
  meta-gradient or meta-update, the test-time adaptation and score of one episode), each
  with its tolerance;
- `deviations`: what ours keeps different, one line each with why.
A check passes when every difference is within its tolerance and every setting matches or
carries a note saying why it cannot (the deviation it belongs to).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from benchsuite.running import planning, registry
from benchsuite.running import protocols as protocol_files

TINY = 1e-300


class Unavailable(RuntimeError):
    """The original implementation a check needs is not installed here (the message says
    which package and how to install it)."""


@dataclass(frozen=True)
class Setting:
    """One setting of the source beside ours."""

    name: str
    source_line: str
    """Where the source sets it: file:line (repository@commit) or the package's module."""
    theirs: Any
    ours: Any
    match: bool
    note: str = ""
    """Why a setting that does not match cannot (the deviation), or how the values map."""


@dataclass(frozen=True)
class Difference:
    """A quantity both implementations compute, and how far apart they are."""

    quantity: str
    rel_diff: float
    """max |ours − theirs| / max |theirs| (relative_difference)."""
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return math.isfinite(self.rel_diff) and self.rel_diff <= self.tolerance


@dataclass
class Check:
    """One protocol checked against its source."""

    protocol: str
    source: str
    """The original implementation, with its version or commit."""
    settings: list[Setting] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (bool(self.differences) and all(d.passed for d in self.differences)
                and all(s.match or s.note for s in self.settings))


Tensors = torch.Tensor | Mapping[str, torch.Tensor]


def relative_difference(ours: Tensors, theirs: Tensors) -> float:
    """max |ours − theirs| / max(max |theirs|, tiny), over a tensor or over every tensor of
    a dict (the keys of `theirs`; a key missing from `ours` is an error)."""
    if isinstance(theirs, Mapping):
        assert isinstance(ours, Mapping)
        pairs = [(ours[k], theirs[k]) for k in theirs]
    else:
        assert isinstance(ours, torch.Tensor)
        pairs = [(ours, theirs)]
    gap = max(float((a.double() - b.double()).abs().max()) for a, b in pairs)
    scale = max(float(b.double().abs().max()) for _, b in pairs)
    return gap / max(scale, TINY)


def setting(name: str, source_line: str, theirs: Any, ours: Any, note: str = "") -> Setting:
    """A Setting whose `match` is computed: equal values (numbers to 1e-12 relative)."""
    if isinstance(theirs, int | float) and isinstance(ours, int | float) and not (
            isinstance(theirs, bool) or isinstance(ours, bool)):
        match = math.isclose(theirs, ours, rel_tol=1e-12)
    else:
        match = theirs == ours
    return Setting(name, source_line, theirs, ours, match, note)


def protocol_config(method: str, task: str, *, named: str | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """The config our trial of `method` × `task` runs with under its committed protocol
    (the named protocol `named`, else the pair's paper protocol), resolved by the planner
    as `benchsuite run` does; `overrides` replace keys afterwards (a quick check's
    smaller network or meta-batch, never a setting under test)."""
    protocols = protocol_files.load(protocol_files.PACKAGED)  # the committed ones only
    protocol = (protocols.named_protocol(named).for_method(method) if named
                else protocols.paper[method, task])
    config = planning.resolve_pair(registry.discover(), method, task, seed=0,
                                   budget="paper", device="cpu", protocol=protocol)
    unknown = set(overrides) - set(config)
    if unknown:
        raise KeyError(f"overrides for keys the config does not have: {sorted(unknown)}")
    return {**config, **overrides}


def render(checks: list[Check], *, quick: bool, environment: str) -> str:
    """reports/CROSSCHECK.md: per protocol its source, the settings table, the measured
    differences with their tolerances and the deviations kept."""
    mode = "quick (small network and meta-batch)" if quick else "full (the protocols' shapes)"
    lines = ["# Crosscheck: protocols against their original implementations", "",
             f"Written by `python -m crosscheck` ({mode}; `nox -s crosscheck`); "
             f"{environment}. Each check runs the original code and ours on the same "
             "initial weights and batches in float64 (docs/crosscheck.md).", "",
             "| protocol | source | result |", "|---|---|---|"]
    lines += [f"| {c.protocol} | {c.source} | {'PASS' if c.passed else 'FAIL'} |"
              for c in checks]
    for check in checks:
        lines += ["", f"## {check.protocol}: {'PASS' if check.passed else 'FAIL'}", "",
                  f"Source: {check.source}", "",
                  "| setting | source line | theirs | ours | match |", "|---|---|---|---|---|"]
        lines += [f"| {s.name} | {s.source_line} | {_cell(s.theirs)} | {_cell(s.ours)} | "
                  f"{'yes' if s.match else 'no'}{' (' + s.note + ')' if s.note else ''} |"
                  for s in check.settings]
        lines += ["", "| measured | relative difference | tolerance | passed | note |",
                  "|---|---|---|---|---|"]
        lines += [f"| {d.quantity} | {d.rel_diff:.2e} | {d.tolerance:.0e} | "
                  f"{'yes' if d.passed else 'NO'} | {d.note} |" for d in check.differences]
        if check.deviations:
            lines += ["", "Deviations kept:", ""]
            lines += [f"- {line}" for line in check.deviations]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
