"""Seed-level statistics (benchsuite/core/statistics.py) against hand-computed values, and the
report's use of them on constructed rows."""

import math

import numpy as np
import pandas as pd
import pytest

from benchsuite.core import statistics as stats
from benchsuite.reporting.cells import MEAN, Cell, cell_for, compare, scored_trials


@pytest.mark.parametrize("df,expected", [(1, 12.706205), (2, 4.302653), (4, 2.776445),
                                         (10, 2.228139), (30, 2.042272)])
def test_t_quantile_matches_the_table(df, expected):
    assert stats.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)
    assert stats.t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-6)


def test_t_interval_of_three_numbers():
    # 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) · 1 / √3 = 4.302653 / 1.732051
    interval = stats.t_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.sd == pytest.approx(1.0) and interval.n == 3
    assert interval.half_width == pytest.approx(2.484138, abs=1e-6)
    # one more run: t · sd · √(1 + 1/3) = 4.302653 · 1.154701
    assert interval.prediction_half_width() == pytest.approx(4.968275, abs=1e-6)
    assert math.isnan(stats.t_interval([5.0]).half_width)


def test_paired_difference_over_seeds():
    a = {0: 1.0, 1: 2.0, 2: 4.0, 7: 9.0}      # seed 7 has no partner: ignored
    b = {0: 0.5, 1: 1.0, 2: 2.5}
    # differences 0.5, 1, 1.5: mean 1, sd 0.5, half 4.302653 · 0.5 / √3 = 1.242069
    d = stats.paired_difference(a, b)
    assert d.interval.mean == pytest.approx(1.0) and d.interval.n == 3
    assert d.interval.half_width == pytest.approx(1.242069, abs=1e-6)
    assert not d.significant and d.unit == "seeds"
    # differences 1.0, 1.1, 0.9: sd 0.1, half 0.248414 — excludes 0
    tight = stats.paired_difference({0: 2.0, 1: 2.1, 2: 1.9}, {0: 1.0, 1: 1.0, 2: 1.0})
    assert tight.interval.half_width == pytest.approx(0.248414, abs=1e-6)
    assert tight.significant


def test_paired_episode_difference_skips_non_finite_episodes():
    d = stats.paired_episode_difference(np.array([1.0, 2.0, np.nan, 3.0]),
                                        np.array([0.0, 1.0, 1.0, 2.0]))
    assert d.interval.n == 3 and d.interval.mean == 1.0 and d.interval.half_width == 0.0
    assert d.significant  # the same improvement on every episode


def test_rank_groups_share_ranks_with_the_group_leader():
    order = ["A", "B", "C", "D", "E"]   # best first
    different = {("A", "B"): False, ("A", "C"): True, ("C", "D"): False, ("C", "E"): True}
    ranks = stats.rank_groups(order, lambda x, y: different[(x, y)])
    assert ranks == {"A": 1, "B": 1, "C": 3, "D": 3, "E": 5}


def test_probability_of_improvement_over_paired_seeds_and_episodes():
    ours, theirs = {0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.85, 1: 0.8, 2: 0.75}
    # seed 0 better (1), seed 1 tie (½), seed 2 worse (0)
    assert stats.probability_of_improvement(ours, theirs, True) == pytest.approx(0.5)
    assert stats.probability_of_improvement(ours, theirs, False) == pytest.approx(0.5)
    assert stats.probability_of_improvement({0: 1.0, 1: 2.0}, {0: 3.0, 1: 4.0}, False) == 1
    episodes = stats.episode_probability_of_improvement(
        {0: np.array([1.0, 0.0]), 1: np.array([1.0, 1.0, 1.0, 1.0])},
        {0: np.array([0.0, 0.0]), 1: np.array([0.0, 0.0, 1.0, np.nan])}, True)
    # seed 0: (1 + ½)/2 = 0.75; seed 1: (1 + 1 + ½ + 1)/4 = 0.875 (NaN counts as worse)
    assert episodes == pytest.approx((0.75 + 0.875) / 2)


def test_finite_summary_counts_diverged_episodes_and_keeps_the_mean_finite():
    summary = stats.finite_summary(np.array([1.0, 3.0, np.inf, np.nan, 2.0, 4.0, 5.0, 6.0]))
    assert summary["n"] == 8 and summary["diverged"] == 0.25
    assert summary["mean"] == pytest.approx(3.5) and summary["median"] == pytest.approx(3.5)
    assert stats.interquartile_mean(np.array([0.0, 1.0, 2.0, 100.0])) == pytest.approx(1.5)


def test_episode_scores_round_trip_as_float32():
    values = np.array([0.1, 2.5, np.nan, -np.inf])
    back = stats.decode_scores(stats.encode_scores(values))
    assert np.array_equal(back, values.astype(np.float32).astype(float), equal_nan=True)


def test_hierarchical_bootstrap_brackets_the_mean_of_seed_means():
    rng = np.random.default_rng(1)
    episodes = {s: rng.normal(s, 1.0, size=200) for s in range(5)}
    low, high = stats.hierarchical_bootstrap(episodes, replicates=400)
    centre = np.mean([v.mean() for v in episodes.values()])
    assert low < centre < high
    assert high - low > 1.0  # seed-to-seed spread (0 … 4), not the episode noise
    flat_low, flat_high = stats.hierarchical_bootstrap({0: np.full(10, 2.0)}, replicates=50)
    assert flat_low == flat_high == 2.0


def test_report_cells_mark_partial_means_and_compare_paired():
    cell = Cell(scores={0: 1.0, 1: 2.0, 2: 3.0}, diverged={0: 0.0, 1: 0.5, 2: 0.0})
    assert cell.text() == "2* ± 2.5" and cell.diverged_text() == "17%"
    old = Cell(scores={0: 1.0, 1: math.nan}, diverged={0: None, 1: None})
    assert old.diverged_fraction() is None
    assert old.diverged_text() == "some (fraction not recorded), 1 of 2 seeds failed"
    # a shifted copy on the same seeds differs significantly although the intervals overlap
    shifted = Cell(scores={0: 1.1, 1: 2.1, 2: 3.05}, diverged={0: 0.0, 1: 0.0, 2: 0.0})
    assert compare(shifted, cell).significant
    assert not compare(shifted, Cell(scores={0: 3.0, 1: 1.0, 2: 2.0})).significant


def test_a_seed_whose_training_diverged_counts_as_diverged_not_dropped():
    finished = {"mse": 2.0, "mse_diverged": 0.0, "mse_median": 1.5}
    trials = pd.DataFrame({
        "seed": [0, 1, 2, 3, 4],
        "status": ["finished", "finished", "diverged", "finished", "failed"],
        "config": [{"eval_inner_steps": 5}] * 5,
        "metrics": [dict(finished, mse=1.0), finished, {}, dict(finished, mse=3.0), {}]})
    cell = cell_for(scored_trials(trials), "mse", 5, MEAN, False)
    assert sorted(cell.scores) == [0, 1, 2, 3]  # a failed trial runs again: not scored yet
    assert cell.finite == {0: 1.0, 1: 2.0, 3: 3.0} and cell.failed == 1
    assert cell.diverged_fraction() == 0.25
    assert cell.diverged_text() == "25%, 1 of 4 seeds failed"
    assert cell.text() == "2* ± 2.5"  # over the three finite seeds, marked
    assert cell.median_text() == "1.5*"
