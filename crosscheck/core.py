"""What a differential check reports: the settings read from a source beside ours, and the
measured differences between the source's computation (run, or re-expressed from the cited
lines) and ours on the same weights and batches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

TINY = 1e-300


@dataclass
class Setting:
    """One setting of a protocol: where the source states it, its value there, ours."""

    name: str
    source_line: str
    theirs: object
    ours: object
    match: bool
    note: str = ""


@dataclass
class Difference:
    """A measured relative difference between the source's quantity and ours."""

    quantity: str
    rel_diff: float
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.rel_diff <= self.tolerance


@dataclass
class Check:
    """One protocol checked against its source."""

    protocol: str
    source: str
    settings: list[Setting]
    differences: list[Difference]
    deviations: list[str]

    @property
    def passed(self) -> bool:
        return all(s.match for s in self.settings) and all(d.passed for d in self.differences)


def relative_difference(a, b) -> float:
    """max |a − b| / max(|b|, tiny), over tensors or dicts of tensors (b is the reference)."""
    if isinstance(b, Mapping):
        return max(relative_difference(a[k], b[k]) for k in b)
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / max(float(b.abs().max()), TINY))
