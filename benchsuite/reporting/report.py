"""The leaderboard: reads every trial record under a results folder and writes
`LEADERBOARD.md` (tables per task) with figures (learning curves with seed bands, and a
cost figure: validation metric vs wall-clock, test metric vs s/iteration and peak MiB).

Statistics are seed-level (benchsuite/core/statistics.py, docs/statistics.md): a seed's score is
the mean over its test episodes (the finite ones; the fraction that diverged is shown
beside it, and a seed whose training diverged counts as wholly diverged), a row's score is
the mean of its seed means ± the 95% t interval over seeds.
Methods are compared paired on the seeds they share (same seed → same test episodes);
methods not significantly different from their group's leader share its rank. Where a
task has floor records (methods whose protocol is a floor: `scratch`, `transfer`), every
row that does not beat the best floor is flagged. Every row names the protocol its trials
ran under ("paper protocol", "tuned (budget 4)", "protocol NAME", "task defaults"), and
each task lists the protocols' sources and deviations under its table. Incompatible (n/a)
pairs are listed once under the table. Rows computed with an older version of a plugin's
source are marked; bad files are skipped with a warning.
"""

from __future__ import annotations

import datetime
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchsuite.core import statistics as stats
from benchsuite.running.registry import Registry, changed_code
from benchsuite.storage.records import DIVERGED, FINISHED, GOOD_STATUSES, NOT_APPLICABLE
from benchsuite.storage.results import read_records

IGNORED_CONFIG_KEYS = ("seed",)
BUDGET_KEYS = ("inner_steps", "eval_inner_steps", "iterations", "meta_batch")
"""What each row ran with, in columns: a protocol's source gives its paper's set-up, and a
command line may set iterations and meta-batch for a whole grid."""
ENVIRONMENT_KEYS = ("device_name", "cpu_count", "torch_threads", "platform", "python", "torch",
                    "numpy", "pillow", "git_commit")
PUBLISHED_FILE = "published.toml"
PUBLISHED_FIELDS = ("task", "method", "metric", "value", "source")
REFERENCE_METHOD = "maml"
"""The probability-of-improvement column compares every row with this method."""
PARTIAL = "*"
"""Marks a score averaged over finite episodes (or seeds) only."""


def config_signature(config: dict) -> tuple:
    """A row's identity: the config without the seed, the device by its kind (cpu, cuda),
    so CPU and GPU timings never pool in one row."""
    kept = {k: v for k, v in config.items() if k not in IGNORED_CONFIG_KEYS}
    if "device" in kept:
        kept["device"] = str(kept["device"]).split(":")[0]
    return tuple(sorted((k, str(v)) for k, v in kept.items()))


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}"


def percent(fraction: float) -> str:
    if fraction == 0:
        return "0%"
    return f"{100 * fraction:.2g}%"


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


# -- one score of one row, seed by seed ----------------------------------------------------
@dataclass
class Cell:
    """A row's test metric after one number of adaptation steps: per seed, the mean over
    its episodes (finite ones), the diverged fraction (None: not recorded), the episode
    std and count, the median, and the episode scores where the record keeps them."""

    means: dict[int, float] = field(default_factory=dict)
    diverged: dict[int, float | None] = field(default_factory=dict)
    stds: dict[int, float] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    medians: dict[int, float] = field(default_factory=dict)
    episodes: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def finite(self) -> dict[int, float]:
        return {s: v for s, v in self.means.items() if math.isfinite(v)}

    def interval(self) -> tuple[stats.Interval, str]:
        """Seed-level t interval over the finite seed means; with one seed, the episode
        t interval of that seed (unit "episodes")."""
        finite = self.finite
        if len(finite) != 1:
            return stats.t_interval(list(finite.values())), "seeds"
        (seed, mean), = finite.items()
        std, n = self.stds.get(seed, math.nan), self.counts.get(seed, 0)
        n_finite = round(n * (1 - (self.diverged.get(seed) or 0)))
        return stats.Interval(mean, stats.normal_half_width(std, n_finite), 1, math.nan), \
            "episodes"

    def diverged_fraction(self) -> float | None:
        """Mean over seeds of the diverged fraction; None where a seed lacks it and its
        mean is not finite (an old record: some episode diverged, how many is unknown)."""
        fractions = []
        for seed, value in self.means.items():
            fraction = self.diverged.get(seed)
            if fraction is None:
                if not math.isfinite(value):
                    return None
                fraction = 0.0  # a finite mean over all episodes: none diverged
            fractions.append(fraction)
        return sum(fractions) / len(fractions) if fractions else None

    @property
    def partial(self) -> bool:
        fraction = self.diverged_fraction()
        return fraction is None or fraction > 0 or len(self.finite) < len(self.means)

    def text(self) -> str:
        """"mean ± half-width" (marked when over finite episodes or seeds only)."""
        if not self.means:
            return "–"
        if not self.finite:
            return "diverged"
        interval, unit = self.interval()
        mark = PARTIAL if self.partial else ""
        ci = f" ± {fmt(interval.half_width, 2)}" if math.isfinite(interval.half_width) else ""
        one_seed = " (1 seed: episode CI)" if unit == "episodes" and ci else ""
        return f"{fmt(interval.mean)}{mark}{ci}{one_seed}"

    def diverged_text(self) -> str:
        fraction = self.diverged_fraction()
        if fraction is None:
            bad = sum(1 for v in self.means.values() if not math.isfinite(v))
            return f"some, in {bad} of {len(self.means)} seeds (fraction not recorded)"
        return percent(fraction)

    def median_text(self) -> str:
        """The mean over the finite seeds of their episode medians."""
        values = [self.medians[s] for s in self.finite if s in self.medians]
        if len(values) < len(self.finite) or not values:
            return "not recorded"
        mark = PARTIAL if len(self.finite) < len(self.means) else ""
        return fmt(stats.t_interval(values).mean) + mark


def step_prefix(metric: str, steps: int, config: dict) -> str:
    return metric if steps == config.get("eval_inner_steps") else f"{metric}_at_{steps}_steps"


def scored_trials(group: pd.DataFrame) -> pd.DataFrame:
    """The trials a row's score covers: the finished ones and those whose meta-training
    diverged, so that a seed lost to divergence is counted, not silently dropped."""
    return group[group.status.isin([FINISHED, DIVERGED])]


def cell_for(trials: pd.DataFrame, metric: str, steps: int) -> Cell:
    """The row's score after `steps` steps; a trial whose training diverged has no test
    score, so its seed enters as a non-finite mean with all its episodes diverged."""
    cell = Cell()
    for seed, metrics, config, status in zip(trials.seed, trials.metrics, trials.config,
                                             trials.status):
        if status == DIVERGED:
            cell.means[int(seed)], cell.diverged[int(seed)] = math.nan, 1.0
            continue
        prefix = step_prefix(metric, steps, config)
        value = metrics.get(prefix, metrics.get(f"{metric}_at_{steps}_steps"))
        if not isinstance(value, (int, float)):
            continue
        seed = int(seed)
        cell.means[seed] = float(value)
        cell.diverged[seed] = metrics.get(f"{prefix}_diverged")
        if isinstance(metrics.get(f"{prefix}_std"), (int, float)):
            cell.stds[seed] = float(metrics[f"{prefix}_std"])
            cell.counts[seed] = int(metrics.get(f"{prefix}_n", 0))
        if isinstance(metrics.get(f"{prefix}_median"), (int, float)):
            cell.medians[seed] = float(metrics[f"{prefix}_median"])
        encoded = (metrics.get("episode_scores") or {}).get(str(steps))
        if isinstance(encoded, str):
            cell.episodes[seed] = stats.decode_scores(encoded)
    return cell


def scalar_cell(done: pd.DataFrame, key: str) -> Cell:
    """A per-seed scalar metric (hypergradient fidelity, ...) as a Cell."""
    cell = Cell()
    for seed, metrics in zip(done.seed, done.metrics):
        if isinstance(metrics.get(key), (int, float)):
            cell.means[int(seed)] = float(metrics[key])
            cell.diverged[int(seed)] = 0.0 if math.isfinite(metrics[key]) else None
    return cell


def compare(a: Cell, b: Cell) -> stats.Difference:
    """a − b: paired over the seeds both have (≥ 2), else paired over the episodes of
    their one shared seed, else unpaired from the two intervals (normal approximation)."""
    seeds = sorted(set(a.finite) & set(b.finite))
    if len(seeds) >= 2:
        return stats.paired_difference(a.finite, b.finite)
    if len(seeds) == 1 and seeds[0] in a.episodes and seeds[0] in b.episodes \
            and len(a.episodes[seeds[0]]) == len(b.episodes[seeds[0]]):
        return stats.paired_episode_difference(a.episodes[seeds[0]], b.episodes[seeds[0]])
    (ia, _), (ib, _) = a.interval(), b.interval()
    return stats.Difference(stats.Interval(ia.mean - ib.mean,
                                           math.hypot(ia.half_width, ib.half_width), 0,
                                           math.nan), "unpaired")


def better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


# -- the per-task table -----------------------------------------------------------------------
@dataclass
class Row:
    label: str
    method: str
    done: pd.DataFrame
    status: str
    main: Cell
    group: pd.DataFrame

    @property
    def scored(self) -> pd.DataFrame:
        """The trials its scores cover (scored_trials)."""
        return scored_trials(self.group)

    @property
    def score(self) -> float:
        return self.main.interval()[0].mean if self.main.finite else math.nan

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


def step_text(cell: Cell) -> str:
    """A further step count's score, with what diverged when anything did."""
    if not cell.means:
        return "–"
    fraction = cell.diverged_fraction()
    bad = sum(1 for v in cell.means.values() if not math.isfinite(v))
    if fraction is None:
        where = f"non-finite in {bad} of {len(cell.means)} seeds, fraction not recorded"
        return f"non-finite ({where})" if not cell.finite else f"{cell.text()} ({where})"
    return cell.text() + (f" ({percent(fraction)} diverged)" if fraction > 0 else "")


def step_counts(frame: pd.DataFrame, metric: str) -> tuple[list[int], list[int]]:
    """The main step counts (eval_inner_steps) and the other evaluated ones."""
    main = sorted({int(c.get("eval_inner_steps", 0)) for c in frame.config})
    others = {int(k.split("_")[-2]) for ms in frame.metrics for k in ms
              if k.startswith(f"{metric}_at_") and k.endswith("_steps")}
    return main, sorted(others - set(main))


def build_rows(frame: pd.DataFrame, metric: str) -> tuple[list[Row], list[str], list[str]]:
    """Rows with a result, n/a lines and error notes."""
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
        done = group[group.status == FINISHED]
        scored = scored_trials(group)
        main = Cell()
        for steps in sorted({int(c.get("eval_inner_steps", 0)) for c in scored.config}):
            part = cell_for(scored[scored.config.map(lambda c, s=steps: c.get(
                "eval_inner_steps") == s)], metric, steps)
            for name in ("means", "diverged", "stds", "counts", "medians", "episodes"):
                getattr(main, name).update(getattr(part, name))
        status = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        rows.append(Row(label, method, done, status, main, group))
    return rows, not_applicable, notes


def ranks_of(rows: list[Row], higher_is_better: bool) -> dict[str, int]:
    scored = [r for r in rows if math.isfinite(r.score)]
    scored.sort(key=lambda r: -r.score if higher_is_better else r.score)
    cells = {r.label: r.main for r in scored}
    return stats.rank_groups([r.label for r in scored],
                             lambda a, b: compare(cells[a], cells[b]).significant)


def floor_verdict(row: Row, floor: Row | None, higher_is_better: bool) -> str:
    if floor is None:
        return ""
    if row.is_floor:
        return "floor" + (" (best)" if row is floor else "")
    if not math.isfinite(row.score):
        return "BELOW floor"
    if not better(row.score, floor.score, higher_is_better):
        return f"BELOW floor ({floor.label})"
    if not compare(row.main, floor.main).significant:
        return f"not above floor ({floor.label}, n.s.)"
    return "above"


def best_floor(rows: list[Row], higher_is_better: bool) -> Row | None:
    floors = [r for r in rows if r.is_floor and math.isfinite(r.score)]
    if not floors:
        return None
    return max(floors, key=lambda r: r.score if higher_is_better else -r.score)


def improvement_text(row: Row, reference: Row | None, higher_is_better: bool) -> str:
    if reference is None:
        return ""
    if row is reference:
        return "ref"
    seeds = stats.probability_of_improvement(row.main.means, reference.main.means,
                                             higher_is_better)
    text = fmt(seeds, 2)
    shared = set(row.main.episodes) & set(reference.main.episodes)
    if shared:
        episodes = stats.episode_probability_of_improvement(
            {s: row.main.episodes[s] for s in shared},
            {s: reference.main.episodes[s] for s in shared}, higher_is_better)
        text += f" / {fmt(episodes, 2)}"
    return text


def task_table(frame: pd.DataFrame, metric: str,
               higher_is_better: bool) -> tuple[str, list[str], list[str], list[Row]]:
    """The table, the n/a lines, the notes, and the rows (for the figures)."""
    rows, not_applicable, notes = build_rows(frame, metric)
    main_steps, other_steps = step_counts(frame[frame.status == FINISHED], metric)
    hypergrad = sorted({k for ms in frame.metrics for k in ms if k.startswith("hypergrad_")})
    ranks = ranks_of(rows, higher_is_better)
    rows.sort(key=lambda r: (r.label not in ranks, ranks.get(r.label, 0),
                             -r.score if higher_is_better else r.score))
    floor = best_floor(rows, higher_is_better)
    reference = next((r for r in rows if r.method == REFERENCE_METHOD and r.main.finite), None)
    mse = metric == "mse"
    table = []
    for row in rows:
        cells = [ranks.get(row.label, ""), row.label, row.protocol_label,
                 row.main.text() if len(row.done)
                 else ("training diverged" if DIVERGED in row.status else "–")]
        cells.append(row.main.diverged_text() if row.main.means else "–")
        if mse:
            cells.append(row.main.median_text() if row.main.means else "–")
        if reference is not None:
            cells.append(improvement_text(row, reference, higher_is_better)
                         if row.main.finite else "–")
        if floor is not None:
            cells.append(floor_verdict(row, floor, higher_is_better))
        for steps in other_steps:
            cells.append(step_text(cell_for(row.scored, metric, steps)))
        for key in hypergrad:
            cells.append(scalar_cell(row.done, key).text())
        for key in BUDGET_KEYS:
            values = sorted({int(c[key]) for c in row.done.config if key in c})
            cells.append(", ".join(map(str, values)) or "–")
        per_iter = [t["per_iteration_s"] for t in row.done.timing if t.get("per_iteration_s")]
        cells.append(fmt(pd.Series(per_iter).median(), 3) if per_iter else "–")
        totals = [t["total_s"] for t in row.done.timing]
        cells.append(fmt(pd.Series(totals).mean(), 3) if totals else "–")
        peaks = [m["peak_bytes"] for m in row.done.memory]
        cells.append(fmt(max(peaks) / 2**20, 3) if peaks else "–")
        cells.append(row.status)
        table.append(cells)
    arrow = "↑" if higher_is_better else "↓"
    steps_text = "/".join(map(str, main_steps)) or "?"
    header = ["rank", "method", "protocol",
              f"{metric} after {steps_text} steps {arrow} (± 95% CI)", "diverged"]
    if mse:
        header.append("median")
    if reference is not None:
        header.append(f"P(> {REFERENCE_METHOD}) seeds / episodes")
    if floor is not None:
        header.append("vs best floor")
    header += [f"after {s} steps" for s in other_steps] + hypergrad
    header += ["trained with inner steps", "scored after steps", "meta-iterations",
               "meta-batch", "s / meta-iter (median)", "total s", "peak MiB", "status"]
    return (tabulate(table, header, tablefmt="github",
                      disable_numparse=list(range(1, len(header)))),
            not_applicable, notes, rows)


def table_legend(rows: list[Row], metric: str, floor_rows: bool, reference: bool) -> list[str]:
    lines = [f"Per seed: the mean of {metric} over its test episodes; per row: the mean of "
             "the seed means ± the 95% t interval over seeds (n − 1 degrees of freedom; "
             "with a single seed, the episode interval of that seed, marked). Rank: rows "
             "not significantly different (paired over shared seeds, 95%) from their "
             "group's best share its rank. Diverged: the fraction of test episodes whose "
             "score is not finite, averaged over seeds; a seed whose meta-training "
             "diverged counts with all its episodes diverged."]
    if any(r.main.partial for r in rows if r.main.finite):
        lines.append(f"{PARTIAL} mean over the finite episodes (or seeds) only; the "
                     "diverged column gives what was left out.")
    if reference:
        lines.append(f"P(> {REFERENCE_METHOD}): the share of paired seeds on which the "
                     f"row's seed mean beats {REFERENCE_METHOD}'s (ties ½); after the slash, "
                     "the share of shared test episodes on which it does, where records "
                     "keep per-episode scores.")
    if floor_rows:
        floors = ", ".join(sorted({r.method for r in rows if r.is_floor}))
        lines.append("vs best floor: BELOW where the row's mean does not beat the best "
                     f"floor ({floors}); n.s. where it is above but not significantly.")
    lines.append(f"The headline {metric} is after the number of inner steps each method "
                 "trains with, unless its protocol scores otherwise (MAML's papers test "
                 "with more steps); the \"after N steps\" columns are diagnostics.")
    return [" ".join(lines), ""]


# -- published numbers -----------------------------------------------------------------------
def load_published(results: Path) -> tuple[list[dict], list[str]]:
    """The paper numbers of every `published.toml` under `results`, and a warning for each
    entry that lacks a field."""
    entries, warnings = [], []
    for path in sorted(Path(results).rglob(PUBLISHED_FILE)):
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            warnings.append(f"skipped {path}: {error}")
            continue
        for number, entry in enumerate(document.get("result", [])):
            missing = [k for k in PUBLISHED_FIELDS if k not in entry]
            if missing:
                warnings.append(f"skipped result {number + 1} of {path}: lacks {missing}")
                continue
            entries.append(entry)
    return entries, warnings


def follows(config: dict, entry: dict) -> bool:
    """Whether a trial's config has every setting the published protocol names."""
    return all(str(config.get(k)) == str(v) for k, v in entry.get("config", {}).items())


def published_cell(group: pd.DataFrame, key: str, metric: str) -> Cell | None:
    """The Cell of a published metric name (`mse_at_5_steps`, or the main `mse`)."""
    if key == metric:
        steps = {int(c.get("eval_inner_steps", 0)) for c in group.config}
        return cell_for(group, metric, steps.pop()) if len(steps) == 1 else None
    if key.startswith(f"{metric}_at_") and key.endswith("_steps"):
        return cell_for(group, metric, int(key.split("_")[-2]))
    return scalar_cell(group, key)


def published_table(frame: pd.DataFrame, metric: str, published: list[dict]) -> str:
    """Published numbers beside ours. A paper's number is one run; ours is the mean of
    n seeds. "paper vs one run" asks whether the paper's run falls in the 95% prediction
    interval of one more run of ours, t·sd·√(1 + 1/n) around our mean — sd being our
    seed-to-seed spread, which contains both training randomness and the evaluation noise
    of our test episodes — widened by the paper's own interval where it reports one. With
    one seed, our episode interval stands in (evaluation noise only)."""
    done = frame[frame.status == FINISHED]
    labels = method_labels(frame)
    rows = []
    for entry in published:
        if done.empty or entry["task"] != done.task.iloc[0]:
            continue
        matching = done[(done.method == entry["method"])
                        & done.config.map(lambda c, e=entry: follows(c, e))]
        for signature, group in matching.groupby("signature", sort=False):
            cell = published_cell(group, entry["metric"], metric)
            if cell is None or not cell.finite:
                continue
            interval, unit = cell.interval()
            spread = (interval.prediction_half_width() if unit == "seeds"
                      else interval.half_width)
            delta = interval.mean - entry["value"]
            paper_ci = entry.get("ci95", 0.0)
            outside = math.isfinite(spread) and abs(delta) > math.hypot(spread, paper_ci)
            paper = fmt(entry["value"]) + (f" ± {fmt(paper_ci, 2)}" if paper_ci else "")
            ci = f" ± {fmt(interval.half_width, 2)}" if math.isfinite(
                interval.half_width) else ""
            rows.append([labels[(entry["method"], signature)], entry["metric"],
                         f"{paper} ({entry['source']})", f"{fmt(interval.mean)}{ci}",
                         f"{delta:+.3g}", f"± {fmt(spread, 2)}" + (
                             " (episodes, 1 seed)" if unit == "episodes" else ""),
                         "OUTSIDE" if outside else "within", len(cell.means)])
    if not rows:
        return ""
    return tabulate(rows, ["method", "metric", "paper", "ours ± 95% CI", "Δ",
                           "one run of ours: 95% range", "paper vs one run", "seeds"],
                    tablefmt="github", disable_numparse=True)


# -- figures ------------------------------------------------------------------------------
def seed_band(values: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per x: the mean over seeds and the range (min to max) over seeds. (A t band over 2-3
    seeds is wider than the data and crosses 0 on the log axes of MSE tasks.)"""
    return values.mean(axis=1), values.min(axis=1), values.max(axis=1)


def plot_task(frame: pd.DataFrame, task: str, metric: str, folder: Path,
              rows: list[Row] | None = None, higher_is_better: bool = True) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = frame[(frame.status == FINISHED) & frame.curve.map(bool)]
    if done.empty:
        return []
    labels = method_labels(frame)
    rows = rows or []
    floors = [r for r in rows if r.is_floor and math.isfinite(r.score)]
    log_y = metric == "mse"
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted({*labels.values(), *(r.label for r in rows)})
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}

    def curves(ax, x_key):
        for (method, signature), group in done.groupby(["method", "signature"], sort=True):
            points = pd.DataFrame([{**p, "seed": seed} for seed, curve in
                                   zip(group.seed, group.curve) for p in curve])
            values = points.pivot_table(index="iteration", columns="seed",
                                        values=f"val_{metric}", aggfunc="mean")
            mean, low, high = seed_band(values)
            x = (points.groupby("iteration")[x_key].mean().loc[values.index]
                 if x_key != "iteration" else values.index)
            label = labels[(method, signature)]
            ax.plot(x, mean, marker=".", label=label, color=colors[label])
            if values.shape[1] > 1:
                ax.fill_between(x, low, high, color=colors[label], alpha=0.15, lw=0)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)

    def floor_lines(ax):
        for row in floors:
            ax.axhline(row.score, ls="--", lw=1, color="grey")
            ax.annotate(f"floor: {row.label}", (0.01, row.score), xycoords=("axes fraction",
                        "data"), fontsize="x-small", color="grey", va="bottom")

    files = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    curves(ax, "iteration")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{task}: validation {metric} (mean over seeds, band: seed range)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / f"{task}-curves.png", dpi=110)
    plt.close(fig)
    files.append(f"{task}-curves.png")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    curves(axes[0], "train_time_s")
    axes[0].set_xlabel("training wall-clock (s)")
    axes[0].set_ylabel(f"validation {metric}")
    axes[0].set_title("validation metric vs training time")
    axes[0].legend(fontsize="x-small")
    costs = (("per_iteration_s", "s / meta-iteration (median)"), ("peak_mib", "peak MiB"))
    for ax, (key, x_label) in zip(axes[1:], costs):
        for row in rows:
            if not math.isfinite(row.score):
                continue
            if key == "per_iteration_s":
                xs = [t.get("per_iteration_s") for t in row.done.timing]
                xs = [v for v in xs if v]
                x = float(np.median(xs)) if xs else None
            else:
                x = max(m["peak_bytes"] for m in row.done.memory) / 2**20
            if not x:
                continue
            half = row.main.interval()[0].half_width
            ax.errorbar([x], [row.score], yerr=[half] if math.isfinite(half) else None,
                        fmt="o", capsize=3, color=colors.get(row.label, "C0"))
            ax.annotate(row.label, (x, row.score), fontsize="x-small",
                        xytext=(3, 3), textcoords="offset points")
        floor_lines(ax)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel(f"test {metric} ({'higher' if higher_is_better else 'lower'} is better)")
        ax.set_title(f"test {metric} vs {x_label.split(' (')[0]}")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{task}: cost (seed means, 95% CI; floors dashed)")
    fig.tight_layout()
    fig.savefig(folder / f"{task}-vs-time.png", dpi=110)
    plt.close(fig)
    files.append(f"{task}-vs-time.png")
    return files


# -- the document -------------------------------------------------------------------------
def write_report(results: Path, out: Path, registry: Registry) -> tuple[Path, list[str]]:
    records, warnings = read_records(results)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Leaderboard", "",
             f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} "
             f"from {len(records)} trial records in `{results}`.", ""]
    if records:
        frame = pd.DataFrame(records)
        frame["signature"] = frame.config.map(config_signature)
        frame["stale"] = [_is_stale(r, registry) for r in records]
        frame = _drop_superseded(frame)
        lines += environment_lines(records)
        published, problems = load_published(results)
        warnings += problems
        budgets = ", ".join(sorted(frame.config.map(lambda c: c.get("budget", "?")).unique()))
        lines += [f"Budget: {budgets} (quick = CPU-sized iteration counts; paper = the "
                  "paper's). Scores are seed-level: the mean of per-seed means ± the 95% t "
                  "interval over seeds (docs/statistics.md).", ""]
        for task, group in frame.groupby("task", sort=True):
            metric, higher = _objective(group, registry)
            other_metric = group.objective.map(lambda o: o["metric"]) != metric
            warnings += [f"skipped {path}: its {task} metric is not {metric}"
                         for path in group[other_metric]._path]
            group = group[~other_metric]
            seeds = sorted(group.seed.unique())
            lines += [f"## {task}", "", f"Seeds: {', '.join(map(str, seeds))}. "
                      f"Metric: {metric} ({'higher' if higher else 'lower'} is better).", ""]
            table, not_applicable, notes, rows = task_table(group, metric, higher)
            if rows:
                lines += [table, ""]
                lines += table_legend(rows, metric, best_floor(rows, higher) is not None,
                                      any(r.method == REFERENCE_METHOD and r.main.finite
                                          for r in rows))
            comparison = published_table(group, metric, published)
            if comparison:
                lines += ["Published results (Δ = ours − paper; a paper's number is one run, "
                          "so it is set against the 95% range of one run of ours, t·sd·√(1 + "
                          "1/n) over our seeds, widened by the paper's own CI where it "
                          "reports one):", "", comparison, ""]
            lines += protocol_lines(rows)
            if not_applicable:
                lines += ["Not applicable here (one line per incompatible pair):",
                          *[f"- {n}" for n in dict.fromkeys(not_applicable)], ""]
            if notes:
                lines += ["Notes:", *[f"- {n}" for n in dict.fromkeys(notes)], ""]
            for name in plot_task(group, task, metric, out / "figures", rows, higher):
                lines += [f"![{name}](figures/{name})", ""]
    path = out / "LEADERBOARD.md"
    path.write_text("\n".join(lines))
    return path, warnings


def protocol_lines(rows: list[Row]) -> list[str]:
    """Where each row's settings come from: the protocols' sources and deviations."""
    lines = []
    for row in rows:
        for protocol in row.protocols:
            if protocol["kind"] in ("defaults", "floor"):
                continue
            text = f"- {row.label} — {protocol['label']}: {protocol['source'].rstrip('.')}."
            if protocol.get("deviations"):
                text += f" Deviations: {protocol['deviations']}"
            lines.append(text)
    return (["Protocols (protocols/; rows not listed run on the task's defaults or are "
             "floors). A source gives its paper's set-up; the table's step, meta-iteration "
             "and meta-batch columns give what ran, where a command line set them:", "",
             *dict.fromkeys(lines), ""] if lines else [])


def environment_lines(records: list[dict]) -> list[str]:
    """Hardware, software and the exact commands behind the records."""
    provenance = pd.DataFrame([r["provenance"] for r in records if r["provenance"]])
    if provenance.empty:
        return []
    lines = ["Environment: " + "; ".join(
        f"{key} {', '.join(sorted(map(str, provenance[key].dropna().unique())))}"
        for key in ENVIRONMENT_KEYS if key in provenance), ""]
    commands = sorted(provenance.get("command", pd.Series(dtype=str)).dropna().unique())
    commands = [c for c in commands if c]
    if commands:
        lines += ["Commands:", "", "```", *commands, "```", ""]
    return lines


def _is_stale(record: dict, registry: Registry) -> bool:
    method, task = registry.methods.get(record["method"]), registry.tasks.get(record["task"])
    return bool(method and task and changed_code(record.get("code") or {}, method, task))


def _drop_superseded(frame: pd.DataFrame) -> pd.DataFrame:
    """Where a trial exists for the current plugin code, its older-code twins are dropped."""
    keys = ["task", "method", "signature", "seed"]
    has_current = frame.groupby(keys).stale.transform(lambda stale: (~stale).any())
    return frame[~(frame.stale & has_current)]


def _objective(group: pd.DataFrame, registry: Registry) -> tuple[str, bool]:
    """The task's metric as its plugin defines it now, else as most of its records say."""
    task = registry.tasks.get(group.task.iloc[0])
    if task:
        return task.cls.metric, task.cls.higher_is_better
    objective = group.objective.map(lambda o: (o["metric"], o["higher_is_better"]))
    return objective.mode().iloc[0]
