"""One score of one leaderboard row, seed by seed (docs/statistics.md).

A `Cell` holds, per seed, one number (the seed's score) and what went wrong on that seed.
Two statistics fill cells:
An episode *diverged* when its score is not finite or, for a lower-is-better metric, blew
up: more than BLOW_UP times the median of the seed's finite episodes. Both kinds are
treated alike everywhere:
- `ROBUST` (the headline and the ranks): the interquartile mean of all the seed's test
  episodes, a diverged episode counting as the worst possible score. Up to a quarter of
  diverged episodes are trimmed; beyond a quarter, the seed's score is itself not finite
  and the seed *failed*. A seed whose meta-training diverged has failed too. With one test
  episode (scored per query example) the seed's score is that episode's mean, and any
  diverged example fails it.
- `MEAN` (the papers' statistic: the published comparison and the diagnostics): the mean
  over the episodes that did not diverge, marked where some did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchsuite.core import statistics as stats
from benchsuite.storage.records import DIVERGED, FINISHED

ROBUST, MEAN = "robust", "mean"
BLOW_UP = 1e3
"""A finite episode score this many times the seed's median (lower-is-better metrics) counts
as blown up, like a non-finite one."""
PARTIAL = "*"
"""Marks a score averaged over finite episodes (or over the seeds that did not fail) only."""


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}"


def percent(fraction: float) -> str:
    return "0%" if fraction == 0 else f"{100 * fraction:.2g}%"


def better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


@dataclass
class Cell:
    """Per seed: its score (`scores`, non-finite where the seed failed), the fraction of
    its test episodes that diverged (None: not recorded), the episode std and count, the
    median, and the episode scores where the record keeps them."""

    scores: dict[int, float] = field(default_factory=dict)
    diverged: dict[int, float | None] = field(default_factory=dict)
    stds: dict[int, float] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    medians: dict[int, float] = field(default_factory=dict)
    episodes: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def finite(self) -> dict[int, float]:
        return {s: v for s, v in self.scores.items() if math.isfinite(v)}

    @property
    def failed(self) -> int:
        """Seeds whose score is not finite (training diverged, or too many episodes)."""
        return len(self.scores) - len(self.finite)

    @property
    def failed_fraction(self) -> float:
        return self.failed / len(self.scores) if self.scores else 0.0

    def interval(self) -> tuple[stats.Interval, str]:
        """Seed-level t interval over the finite seed scores; with one seed, the episode
        t interval of that seed (unit "episodes")."""
        finite = self.finite
        if len(finite) != 1:
            return stats.t_interval(list(finite.values())), "seeds"
        (seed, mean), = finite.items()
        std, n = self.stds.get(seed, math.nan), self.counts.get(seed, 0)
        n_finite = round(n * (1 - (self.diverged.get(seed) or 0)))
        return stats.Interval(mean, stats.normal_half_width(std, n_finite), 1, math.nan), \
            "episodes"

    @property
    def score(self) -> float:
        return self.interval()[0].mean if self.finite else math.nan

    def diverged_fraction(self) -> float | None:
        """Mean over seeds of the diverged fraction; None where a seed lacks it and its
        score is not finite (an old record: some episode diverged, how many is unknown)."""
        fractions = []
        for seed, value in self.scores.items():
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
        return fraction is None or fraction > 0 or self.failed > 0

    def text(self) -> str:
        """"mean ± half-width", marked when it leaves out diverged episodes or seeds."""
        if not self.scores:
            return "–"
        if not self.finite:
            return "diverged"
        interval, unit = self.interval()
        mark = PARTIAL if self.partial else ""
        ci = f" ± {fmt(interval.half_width, 2)}" if math.isfinite(interval.half_width) else ""
        one_seed = " (1 seed: episode CI)" if unit == "episodes" and ci else ""
        return f"{fmt(interval.mean)}{mark}{ci}{one_seed}"

    def diverged_text(self) -> str:
        """The diverged episode fraction, and the failed seeds where any failed."""
        if not self.scores:
            return "–"
        fraction = self.diverged_fraction()
        failed = f", {self.failed} of {len(self.scores)} seeds failed" if self.failed else ""
        if fraction is None:
            return f"some (fraction not recorded){failed}"
        return percent(fraction) + failed

    def median_text(self) -> str:
        """The mean over the finite seeds of their episode medians."""
        values = [self.medians[s] for s in self.finite if s in self.medians]
        if len(values) < len(self.finite) or not values:
            return "not recorded"
        mark = PARTIAL if self.failed else ""
        return fmt(stats.t_interval(values).mean) + mark


def step_prefix(metric: str, steps: int, config: dict) -> str:
    return metric if steps == config.get("eval_inner_steps") else f"{metric}_at_{steps}_steps"


def step_counts(frame: pd.DataFrame, metric: str) -> tuple[list[int], list[int]]:
    """The main step counts (eval_inner_steps) and the other evaluated ones."""
    main = sorted({int(c.get("eval_inner_steps", 0)) for c in frame.config})
    others = {int(k.split("_")[-2]) for ms in frame.metrics for k in ms
              if k.startswith(f"{metric}_at_") and k.endswith("_steps")}
    return main, sorted(others - set(main))


def scored_trials(group: pd.DataFrame) -> pd.DataFrame:
    """The trials a row's score covers: the finished ones and those whose meta-training
    diverged, so that a seed lost to divergence is counted, not silently dropped."""
    return group[group.status.isin([FINISHED, DIVERGED])]


def blown_up(episodes: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """The episodes that count as diverged: the non-finite ones and, for a lower-is-better
    metric, the finite ones more than BLOW_UP times the median of the seed's finite
    episodes (a finite blow-up)."""
    bad = ~np.isfinite(episodes)
    finite = episodes[~bad]
    if not higher_is_better and len(finite) and np.median(finite) > 0:
        bad |= np.isfinite(episodes) & (np.abs(episodes) > BLOW_UP * np.median(finite))
    return bad


def seed_score(episodes: np.ndarray, one_episode: bool, statistic: str,
               higher_is_better: bool) -> tuple[float, np.ndarray]:
    """A seed's score from its episode scores (module docstring), and the blown-up mask.
    A single test episode is scored per query example: any blown-up example fails it."""
    bad = blown_up(episodes, higher_is_better)
    kept = episodes[~bad]
    if one_episode:
        return (math.nan if bad.any() else float(kept.mean())), bad
    if statistic == MEAN:
        return (float(kept.mean()) if len(kept) else math.nan), bad
    worst = -math.inf if higher_is_better else math.inf
    return stats.interquartile_mean(np.where(bad, worst, episodes)), bad


def stored_score(metrics: dict, prefix: str, statistic: str) -> float:
    """A seed's score from a record without episode scores (an older one): the stored
    mean, or interquartile mean, of the finite episodes; failed beyond a quarter diverged
    for the ROBUST score. Finite blow-ups cannot be told apart there."""
    mean, diverged = float(metrics[prefix]), metrics.get(f"{prefix}_diverged") or 0.0
    if statistic == MEAN:
        return mean
    return math.nan if diverged > 0.25 else float(metrics.get(f"{prefix}_iqm", mean))


def cell_for(trials: pd.DataFrame, metric: str, steps: int, statistic: str,
             higher_is_better: bool) -> Cell:
    """The row's score after `steps` steps; a trial whose training diverged has no test
    score, so its seed enters as failed, with all its episodes diverged."""
    cell = Cell()
    for seed, metrics, config, status in zip(trials.seed, trials.metrics, trials.config,
                                             trials.status):
        seed = int(seed)
        if status == DIVERGED:
            cell.scores[seed], cell.diverged[seed] = math.nan, 1.0
            continue
        prefix = step_prefix(metric, steps, config)
        if not isinstance(metrics.get(prefix), (int, float)):
            continue
        encoded = (metrics.get("episode_scores") or {}).get(str(steps))
        if isinstance(encoded, str):
            episodes = cell.episodes[seed] = stats.decode_scores(encoded)
            one_episode = int(config.get("test_episodes", 2)) == 1
            cell.scores[seed], bad = seed_score(episodes, one_episode, statistic,
                                                higher_is_better)
            cell.diverged[seed] = float(bad.mean())
            kept = episodes[~bad]
            cell.counts[seed] = len(episodes)
            if len(kept) > 1:
                cell.stds[seed] = float(kept.std(ddof=1))
            if len(kept):
                cell.medians[seed] = float(np.median(kept))
            continue
        cell.scores[seed] = stored_score(metrics, prefix, statistic)
        cell.diverged[seed] = metrics.get(f"{prefix}_diverged")
        if isinstance(metrics.get(f"{prefix}_std"), (int, float)):
            cell.stds[seed] = float(metrics[f"{prefix}_std"])
            cell.counts[seed] = int(metrics.get(f"{prefix}_n", 0))
        if isinstance(metrics.get(f"{prefix}_median"), (int, float)):
            cell.medians[seed] = float(metrics[f"{prefix}_median"])
    return cell


def scalar_cell(done: pd.DataFrame, key: str) -> Cell:
    """A per-seed scalar metric (hypergradient fidelity, ...) as a Cell."""
    cell = Cell()
    for seed, metrics in zip(done.seed, done.metrics):
        if isinstance(metrics.get(key), (int, float)):
            cell.scores[int(seed)] = float(metrics[key])
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
