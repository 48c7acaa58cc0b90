"""Ranks, floors and the baseline comparison of a task's rows (docs/statistics.md).

Ranks: rows are ordered first by the share of their seeds that failed (a method that fails
on a seed never ranks above one that does not), then by their ROBUST score; a row shares
the rank of its group's leader unless the paired difference is significant or their
failed shares differ. Implementation checks (`Method.implementation_of`) are not ranked:
they are shown as agreement with the row they check.
"""

from __future__ import annotations

import math

from benchsuite.core import statistics as stats
from benchsuite.reporting.cells import better, compare, fmt
from benchsuite.reporting.rows import Row


def ranked(rows: list[Row]) -> list[Row]:
    """The rows that compete: neither implementation checks nor without any score."""
    return [r for r in rows if r.implementation_of is None and r.main.scores]


def ranks_of(rows: list[Row], higher_is_better: bool) -> dict[str, int]:
    competing = [r for r in ranked(rows) if r.main.finite]
    competing.sort(key=lambda r: (r.main.failed_fraction,
                                  -r.score if higher_is_better else r.score))
    by_label = {r.label: r for r in competing}

    def different(leader: str, other: str) -> bool:
        a, b = by_label[leader], by_label[other]
        return a.main.failed_fraction != b.main.failed_fraction or \
            compare(a.main, b.main).significant

    return stats.rank_groups([r.label for r in competing], different)


def order(rows: list[Row], ranks: dict[str, int], higher_is_better: bool) -> list[Row]:
    """Ranked rows by rank, then the unranked ones (implementation checks beside the row
    they check, then rows without a finite score)."""
    def key(row: Row):
        direction = -row.score if higher_is_better else row.score
        return (row.label not in ranks, ranks.get(row.label, 0), row.main.failed_fraction,
                direction if math.isfinite(direction) else math.inf)

    result = sorted((r for r in rows if r.implementation_of is None), key=key)
    for check in (r for r in rows if r.implementation_of is not None):
        target = next((i for i, r in enumerate(result)
                       if r.method == check.implementation_of), len(result) - 1)
        result.insert(target + 1, check)
    return result


def agreement(check: Row, rows: list[Row]) -> str:
    """An implementation check's rank cell: whether it agrees with the row it checks."""
    target = next((r for r in rows if r.method == check.implementation_of
                   and r.implementation_of is None), None)
    if target is None or not (check.main.finite and target.main.finite):
        return f"checks {check.implementation_of}"
    differs = compare(check.main, target.main).significant
    return f"checks {target.label}: " + ("DIFFERS" if differs else "agrees")


def best_floor(rows: list[Row], higher_is_better: bool) -> Row | None:
    floors = [r for r in rows if r.is_floor and math.isfinite(r.score)
              and not r.main.failed]
    if not floors:
        return None
    return max(floors, key=lambda r: r.score if higher_is_better else -r.score)


def floor_verdict(row: Row, floor: Row | None, higher_is_better: bool) -> str:
    """`above`, `above floor (n.s.)`, `below floor (n.s.)` or `BELOW floor`: the
    capitals only where the shortfall is significant (or seeds failed)."""
    if floor is None:
        return ""
    if row.is_floor:
        return "floor" + (" (best)" if row is floor else "")
    if not row.main.finite:
        return "BELOW floor (every seed failed)" if row.main.scores else "–"
    if row.main.failed:
        return f"BELOW floor (fails on {row.main.failed} of {len(row.main.scores)} seeds)"
    significant = compare(row.main, floor.main).significant
    if better(row.score, floor.score, higher_is_better):
        return "above" if significant else "above floor (n.s.)"
    return f"BELOW floor ({floor.label})" if significant else f"below floor ({floor.label}, n.s.)"


def baseline_row(rows: list[Row], baseline: str | None) -> Row | None:
    """The row the probability of improvement compares with: the `baseline` method's
    where given and present, else the first (by name) method under a paper protocol."""
    candidates = [r for r in ranked(rows) if r.main.finite and not r.is_floor]
    if baseline is not None:
        return next((r for r in candidates if r.method == baseline), None)
    papers = sorted((r for r in candidates if r.is_paper), key=lambda r: r.label)
    return papers[0] if papers else None


def has_episodes(row: Row) -> bool:
    """Whether the row's test split has episodes to compare (more than one per seed)."""
    return all(int(c.get("test_episodes", 2)) > 1 for c in row.scored.config)


def improvement_text(row: Row, reference: Row, higher_is_better: bool) -> str:
    """P(row beats the baseline): over paired seeds (a failed seed loses), and after the
    slash over paired test episodes where both keep them and there are episodes."""
    if row is reference:
        return "baseline"
    if not row.main.scores:
        return "–"
    text = fmt(stats.probability_of_improvement(row.main.scores, reference.main.scores,
                                                higher_is_better), 2)
    shared = set(row.main.episodes) & set(reference.main.episodes)
    if shared and has_episodes(row) and has_episodes(reference):
        episodes = stats.episode_probability_of_improvement(
            {s: row.main.episodes[s] for s in shared},
            {s: reference.main.episodes[s] for s in shared}, higher_is_better)
        text += f" / {fmt(episodes, 2)}"
    return text
