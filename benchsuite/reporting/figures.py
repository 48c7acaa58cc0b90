"""The figures of a task: learning curves, and the cost figure (one panel per measure).

Every method has one colour and one marker (`style`), fixed by its place among the
registry's methods, so it looks the same in every figure and every report made with the
same plugins. An axis is logarithmic only where its data span a decade or more. Labels
live in a legend beside the axes, never on the data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchsuite.reporting.rows import Row
from benchsuite.storage.records import FINISHED

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
LINESTYLES = ("-", "--", ":", "-.")
"""Configurations of one method (labels "maml [k=v]") share its colour, not its line."""
FIGURE_WIDTH = 8.0


EXTRA_COLOURS = ("#000000", "#000080", "#800000", "#d400d4", "#008080", "#90ee90", "#ffb6c1",
                 "#8b5a00", "#ffd700", "#4b0082")
"""Ten colours after matplotlib's tab10, chosen so that no two of the twenty are closer than
0.24 in RGB (tests/test_report.py)."""


def palette() -> list[tuple[float, ...]]:
    """20 distinct colours: matplotlib's tab10, then EXTRA_COLOURS."""
    from matplotlib import colormaps, colors

    return [tuple(colormaps["tab10"](i)) for i in range(10)] + [
        tuple(colors.to_rgba(c)) for c in EXTRA_COLOURS]


def style(method: str, methods: list[str]) -> tuple[tuple[float, ...], str]:
    """The colour and marker of `method`, by its place in `methods` (the registry's, sorted);
    a method not registered comes after them. Past 20 methods colours repeat, but the pair
    (colour, marker) stays distinct up to 220."""
    index = sorted(methods).index(method) if method in methods else len(methods) + sum(
        map(ord, method))
    colours = palette()
    return colours[index % len(colours)], MARKERS[(index // len(colours)
                                                   + index) % len(MARKERS)]


def log_scale_fits(values) -> bool:
    """A decade or more between the smallest and largest positive finite value."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    values = values[np.isfinite(values)]
    return bool(len(values)) and bool((values > 0).all()) and values.max() >= 10 * values.min()


def seed_band(values: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per x: the mean over seeds and the range (min to max) over seeds. (A t band over 2-3
    seeds is wider than the data and crosses 0 on the log axes of MSE tasks.)"""
    return values.mean(axis=1), values.min(axis=1), values.max(axis=1)


def _curves(ax, rows: list[Row], metric: str, x_key: str, methods: list[str]) -> list[float]:
    """Plot each row's seed-mean validation curve with its seed range; the y values."""
    ys: list[float] = []
    for number, row in enumerate(rows):
        done = row.done[row.done.curve.map(bool)]
        if done.empty:
            continue
        points = pd.DataFrame([{**p, "seed": seed} for seed, curve in
                               zip(done.seed, done.curve) for p in curve])
        values = points.pivot_table(index="iteration", columns="seed",
                                    values=f"val_{metric}", aggfunc="mean")
        mean, low, high = seed_band(values)
        x = (points.groupby("iteration")[x_key].mean().loc[values.index]
             if x_key != "iteration" else values.index)
        colour, marker = style(row.method, methods)
        variant = sum(r.method == row.method for r in rows[:number])
        ax.plot(x, mean, marker=marker, markersize=4, label=row.label, color=colour,
                linestyle=LINESTYLES[variant % len(LINESTYLES)])
        if values.shape[1] > 1:
            ax.fill_between(x, low, high, color=colour, alpha=0.12, lw=0)
        ys += [*low.tolist(), *high.tolist()]
    return ys


def _scales(ax, ys, xs=None) -> None:
    """Log axes where the data span a decade, labelled in plain numbers at 1, 2 and 5 × 10ᵏ
    (at 10ᵏ only beyond two decades), never on minor ticks, so labels cannot overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, values, set_scale in ((ax.yaxis, ys, ax.set_yscale),
                                    (ax.xaxis, xs, ax.set_xscale)):
        if values is None or not log_scale_fits(values):
            continue
        set_scale("log")
        positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
        decades = math.log10(max(positive) / min(positive))
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)


def plot_task(frame: pd.DataFrame, task: str, metric: str, folder: Path, rows: list[Row],
              higher_is_better: bool, methods: list[str]) -> list[str]:
    """Writes `<task>-curves.png` and `<task>-cost.png` under `folder`; their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if frame[(frame.status == FINISHED) & frame.curve.map(bool)].empty:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    direction = "higher" if higher_is_better else "lower"

    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.4))
    ys = _curves(ax, rows, metric, "iteration", methods)
    _scales(ax, ys)
    ax.set(xlabel="meta-iteration", ylabel=f"validation {metric} ({direction} is better)",
           title=f"{task}: validation {metric} (mean over seeds; band: seed range)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(folder / f"{task}-curves.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    scored = [r for r in rows if math.isfinite(r.score)]
    floors = [r for r in scored if r.is_floor]
    fig, axes = plt.subplots(3, 1, figsize=(FIGURE_WIDTH, 12.0))
    ys = _curves(axes[0], rows, metric, "train_time_s", methods)
    times = [t for r in rows for c in r.done.curve for t in (p.get("train_time_s") for p in c)
             if t]
    _scales(axes[0], ys, times)
    axes[0].set(xlabel="training wall-clock (s)", ylabel=f"validation {metric}",
                title="validation metric vs training time (mean over seeds)")
    for ax, measure, label in ((axes[1], Row.per_iteration_s, "s / meta-iteration (median)"),
                               (axes[2], Row.peak_mib, "peak MiB")):
        xs, ys = [], []
        for row in scored:
            x = measure(row)
            if not math.isfinite(x) or x <= 0:
                continue
            half = row.main.interval()[0].half_width
            colour, marker = style(row.method, methods)
            ax.errorbar([x], [row.score], yerr=[half] if math.isfinite(half) else None,
                        fmt=marker, capsize=3, color=colour, label=row.label)
            xs.append(x)
            ys.append(row.score)
        for row in floors:
            ax.axhline(row.score, ls="--", lw=1, color=style(row.method, methods)[0],
                       label=f"floor: {row.label}")
            ys.append(row.score)
        _scales(ax, ys, xs)
        ax.set(xlabel=label, ylabel=f"test {metric} ({direction} is better)",
               title=f"test {metric} (seed mean ± 95% CI) vs {label.split(' (')[0]}")
    for ax in axes:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{task}: cost")
    fig.tight_layout()
    fig.savefig(folder / f"{task}-cost.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [f"{task}-curves.png", f"{task}-cost.png"]
