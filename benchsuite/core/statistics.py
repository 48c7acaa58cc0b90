"""Seed-level statistics for the leaderboard (see docs/statistics.md).

The unit of replication is the seed: a seed fixes φ₀, the training meta-batches and the
test episodes, so the test episodes of one seed are not independent draws of the method's
performance — they share one trained φ. Every interval here is therefore computed over
per-seed means (a Student t interval with n_seeds − 1 degrees of freedom), and methods are
compared *paired*: for one seed every method is scored on the same test episodes, so the
difference of two methods' seed means removes the seed's episode difficulty.

The t quantile is scipy's (scipy.stats.t.ppf); the rest is plain Python / numpy.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
EPISODE_DTYPE = "<f4"
"""Per-episode scores are stored as little-endian float32, base64-encoded."""


# -- the t distribution -------------------------------------------------------------------------
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (scipy.stats.t)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0 (got p={p}, df={df})")
    from scipy.stats import t  # imported here: the trial loop imports this module

    return float(t.ppf(p, df))


# -- intervals --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """mean ± half_width (a two-sided `level` t interval) of `n` values with sample
    standard deviation `sd`; half_width is NaN below two values."""

    mean: float
    half_width: float
    n: int
    sd: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def prediction_half_width(self, level: float = LEVEL) -> float:
        """Half-width of the interval that one further value (one more seed, one more
        run of the same protocol) falls in: t · sd · √(1 + 1/n)."""
        if self.n < 2:
            return math.nan
        return t_quantile(0.5 + level / 2, self.n - 1) * self.sd * math.sqrt(1 + 1 / self.n)


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean and two-sided t interval of `values` (one value per seed)."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, 0, math.nan)
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(mean, math.nan, n, math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n), n, sd)


def normal_half_width(std: float, n: int, level: float = LEVEL) -> float:
    """The t half-width of a mean of `n` values with standard deviation `std` (the
    episode-level evaluation noise of one seed)."""
    if n < 2 or not math.isfinite(std):
        return math.nan
    return t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)


@dataclass(frozen=True)
class Difference:
    """A paired difference a − b: its interval, over which unit (`seeds` or
    `episodes`), and whether the interval excludes 0."""

    interval: Interval
    unit: str

    @property
    def significant(self) -> bool:
        i = self.interval
        return bool(math.isfinite(i.half_width) and (i.low > 0 or i.high < 0))


def paired_difference(a: Mapping[int, float], b: Mapping[int, float],
                      level: float = LEVEL) -> Difference:
    """a − b over the seeds both have: the t interval of the per-seed differences."""
    seeds = sorted(set(a) & set(b))
    return Difference(t_interval([a[s] - b[s] for s in seeds], level), "seeds")


def paired_episode_difference(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> Difference:
    """a − b over the test episodes of one seed (same episodes for both methods): the t
    interval of the per-episode differences, over the episodes finite for both."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return Difference(t_interval(d[np.isfinite(d)].tolist(), level), "episodes")


def win_share(a: Sequence[float], b: Sequence[float], higher_is_better: bool) -> float:
    """Mean over pairs (a_i, b_i) of 1 if a_i is better, ½ if equal, 0 if worse; NaN for
    no pairs or where a value is not finite (it counts as worse)."""
    if len(a) == 0:
        return math.nan
    total = 0.0
    for x, y in zip(a, b):
        x = x if math.isfinite(x) else (-math.inf if higher_is_better else math.inf)
        y = y if math.isfinite(y) else (-math.inf if higher_is_better else math.inf)
        if x == y:
            total += 0.5
        elif (x > y) == higher_is_better:
            total += 1.0
    return total / len(a)


def probability_of_improvement(a: Mapping[int, float], b: Mapping[int, float],
                               higher_is_better: bool) -> float:
    """P(a beats b) over paired seeds: the share of the seeds both have on which a's seed
    mean is better than b's (ties count ½)."""
    seeds = sorted(set(a) & set(b))
    return win_share([a[s] for s in seeds], [b[s] for s in seeds], higher_is_better)


def episode_probability_of_improvement(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray],
                                       higher_is_better: bool) -> float:
    """P(a beats b on a test episode): the share of the (seed, episode) pairs both have on
    which a's episode score is better (ties ½), each seed weighted equally."""
    shares = [win_share(a[s].tolist(), b[s].tolist(), higher_is_better)
              for s in sorted(set(a) & set(b)) if len(a[s]) == len(b[s]) and len(a[s])]
    return math.fsum(shares) / len(shares) if shares else math.nan


def rank_groups(order: Sequence[str], significant: Callable[[str, str], bool]) -> dict[str, int]:
    """Shared ranks. `order` lists the methods best first; `significant(leader, other)`
    says whether they differ significantly. The best method leads group 1; every later
    method not significantly different from the current leader shares its rank; the
    first that is starts a new group whose rank is its position (1, 1, 3, …)."""
    ranks: dict[str, int] = {}
    leader = None
    for position, name in enumerate(order, start=1):
        if leader is None or significant(leader, name):
            leader = name
            ranks[name] = position
        else:
            ranks[name] = ranks[leader]
    return ranks


def hierarchical_bootstrap(episodes: Mapping[int, np.ndarray], replicates: int = 2000,
                           level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of seed means, resampling seeds with replacement
    and then each chosen seed's (finite) episodes with replacement."""
    rng = np.random.default_rng(seed)
    per_seed = [np.asarray(v, dtype=float) for v in episodes.values()]
    per_seed = [v[np.isfinite(v)] for v in per_seed]
    per_seed = [v for v in per_seed if len(v)]
    if not per_seed:
        return math.nan, math.nan
    means = np.empty(replicates)
    for r in range(replicates):
        chosen = rng.integers(len(per_seed), size=len(per_seed))
        means[r] = np.mean([rng.choice(per_seed[c], size=len(per_seed[c])).mean()
                            for c in chosen])
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


# -- robust summaries of one seed's episodes -----------------------------------------------------
def finite_summary(scores: np.ndarray) -> dict[str, float]:
    """Mean, std, median and interquartile mean over the finite episodes, the count of
    all episodes and the fraction that are not finite (diverged)."""
    scores = np.asarray(scores, dtype=float).ravel()
    finite = scores[np.isfinite(scores)]
    n = len(scores)
    out = {"n": n, "diverged": float(1 - len(finite) / n) if n else math.nan,
           "mean": math.nan, "std": math.nan, "median": math.nan, "iqm": math.nan}
    if len(finite):
        out.update(mean=float(finite.mean()), median=float(np.median(finite)),
                   std=float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                   iqm=interquartile_mean(finite))
    return out


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50% of the sorted values (the 25%-trimmed mean)."""
    values = np.sort(np.asarray(values, dtype=float).ravel())
    n = len(values)
    if n == 0:
        return math.nan
    cut = n // 4
    middle = values[cut:n - cut] if n - 2 * cut > 0 else values
    return float(middle.mean())


# -- compact per-episode scores --------------------------------------------------------------------
def encode_scores(scores) -> str:
    """Per-episode scores (any float array or tensor) as base64 of little-endian float32."""
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().double().numpy()
    return base64.b64encode(np.asarray(scores, dtype=EPISODE_DTYPE).tobytes()).decode("ascii")


def decode_scores(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=EPISODE_DTYPE).astype(float)
