"""The rows of a task's leaderboard: one per method and configuration, with its scores
(cells.py), its protocol, its cost and whether its learning curve had converged."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchsuite.core import statistics as stats
from benchsuite.reporting.cells import MEAN, ROBUST, Cell, cell_for, scored_trials
from benchsuite.storage.records import FINISHED, GOOD_STATUSES, NOT_APPLICABLE

IGNORED_CONFIG_KEYS = ("seed",)
CONVERGENCE_TAIL = 0.25
"""The share of meta-training whose last stretch decides the converged mark."""


def config_signature(config: dict) -> tuple:
    """A row's identity: the config without the seed, the device by its kind (cpu, cuda),
    so CPU and GPU timings never pool in one row."""
    kept = {k: v for k, v in config.items() if k not in IGNORED_CONFIG_KEYS}
    if "device" in kept:
        kept["device"] = str(kept["device"]).split(":")[0]
    return tuple(sorted((k, str(v)) for k, v in kept.items()))


def method_labels(frame: pd.DataFrame) -> dict[tuple, str]:
    """Row labels: the method name, plus the config keys that tell apart several
    configurations of the same method."""
    labels = {}
    for method, group in frame.groupby("method"):
        configs = {row.signature: dict(row.signature) for row in group.itertuples()}
        differing = sorted({k for c in configs.values() for k in c
                            if len({str(o.get(k)) for o in configs.values()}) > 1})
        for signature, config in configs.items():
            suffix = ", ".join(f"{k}={config.get(k)}" for k in differing)
            labels[(method, signature)] = f"{method} [{suffix}]" if suffix else method
    return labels


@dataclass
class Row:
    label: str
    method: str
    group: pd.DataFrame
    """All the row's trials, whatever their status."""
    main: Cell
    """The headline: the ROBUST score after the main number of steps (ranks use it)."""
    mean: Cell
    """The same step count's mean over finite episodes (the papers' statistic)."""
    status: str
    implementation_of: str | None = None
    """The method this row's method re-implements (an implementation check, not ranked)."""

    @property
    def done(self) -> pd.DataFrame:
        return self.group[self.group.status == FINISHED]

    @property
    def scored(self) -> pd.DataFrame:
        """The trials its scores cover (scored_trials)."""
        return scored_trials(self.group)

    @property
    def score(self) -> float:
        return self.main.score

    @property
    def protocols(self) -> list[dict]:
        """The distinct protocols of the row's trials (records say which, since schema 2)."""
        found = {p["name"]: p for p in self.group.get("protocol", pd.Series(dtype=object))
                 if isinstance(p, dict)}
        return list(found.values())

    @property
    def protocol_label(self) -> str:
        return ", ".join(sorted({p["label"] for p in self.protocols})) or "not recorded"

    @property
    def is_floor(self) -> bool:
        """A baseline that learns nothing across tasks (or only plain transfer)."""
        return any(p.get("kind") == "floor" for p in self.protocols)

    @property
    def is_paper(self) -> bool:
        return any(p.get("kind") == "paper" for p in self.protocols)

    def per_iteration_s(self) -> float:
        values = [t["per_iteration_s"] for t in self.done.timing if t.get("per_iteration_s")]
        return float(np.median(values)) if values else math.nan

    def total_s(self) -> float:
        values = [t["total_s"] for t in self.done.timing if "total_s" in t]
        return float(np.mean(values)) if values else math.nan

    def peak_mib(self) -> float:
        values = [m["peak_bytes"] for m in self.done.memory if "peak_bytes" in m]
        return max(values) / 2**20 if values else math.nan

    def converged(self, metric: str, higher_is_better: bool) -> str:
        """From the learning curves' last points (docs/statistics.md): "yes" unless the
        validation metric improved significantly over the last CONVERGENCE_TAIL of
        meta-training — paired over seeds, or with one seed beyond both points' episode
        intervals — then "no (still improving)"; "–" without two such points."""
        key, gains, noise = f"val_{metric}", [], []
        for curve in self.done.curve:
            points = [p for p in curve if isinstance(p.get(key), (int, float))]
            if len(points) < 3 or not points[-1]["iteration"]:
                continue
            cut = points[-1]["iteration"] * (1 - CONVERGENCE_TAIL)
            before, last = [p for p in points if p["iteration"] <= cut][-1], points[-1]
            gain = last[key] - before[key]
            gains.append(gain if higher_is_better else -gain)
            noise.append(math.hypot(before.get(f"{key}_ci95", math.nan),
                                    last.get(f"{key}_ci95", math.nan)))
        if not gains or not all(map(math.isfinite, gains)):
            return "–"
        if len(gains) == 1:
            improving = gains[0] > noise[0]
        else:
            interval = stats.t_interval(gains)
            improving = math.isfinite(interval.half_width) and interval.low > 0
        return "no (still improving)" if improving else "yes"


def build_rows(frame: pd.DataFrame, metric: str, higher_is_better: bool,
               implementations: dict[str, str] | None = None
               ) -> tuple[list[Row], list[str], list[str]]:
    """Rows with a result, n/a lines and error notes. `implementations` maps a method to
    the method it re-implements (`Method.implementation_of`)."""
    rows, not_applicable, notes = [], [], []
    labels = method_labels(frame)
    for (method, signature), group in frame.groupby(["method", "signature"], sort=False):
        label = labels[(method, signature)]
        if group.stale.all():
            label += " (older code)"
        elif group.stale.any():
            label += f" (older code in {group.stale.sum()} of {len(group)} trials)"
        statuses = group.status.value_counts().to_dict()
        if set(statuses) == {NOT_APPLICABLE}:
            not_applicable.append(f"{label}: n/a — {group.error.iloc[0]}")
            continue
        for error in group[~group.status.isin(GOOD_STATUSES)].error.dropna().unique():
            notes.append(f"{label}: {error}")
        scored = scored_trials(group)
        main, mean = Cell(), Cell()
        for steps in sorted({int(c.get("eval_inner_steps", 0)) for c in scored.config}):
            trials = scored[scored.config.map(lambda c, s=steps: c.get(
                "eval_inner_steps") == s)]
            for cell, statistic in ((main, ROBUST), (mean, MEAN)):
                merge(cell, cell_for(trials, metric, steps, statistic, higher_is_better))
        status = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        rows.append(Row(label, method, group, main, mean, status,
                        (implementations or {}).get(method)))
    return rows, not_applicable, notes


def merge(into: Cell, part: Cell) -> None:
    for name in ("scores", "diverged", "stds", "counts", "medians", "episodes"):
        getattr(into, name).update(getattr(part, name))
