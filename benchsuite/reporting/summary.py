"""The compact results table a run ends with: per task and method, the leaderboard's
headline score (rows.py, docs/statistics.md) with its interval, the seconds per
meta-iteration, the peak memory and the trials' statuses — what the report's main
table says, in a terminal's width."""

from __future__ import annotations

from tabulate import tabulate

from benchsuite.reporting.cells import fmt
from benchsuite.reporting.frame import objective, records_frame
from benchsuite.reporting.rows import build_rows
from benchsuite.running.registry import Registry


def results_table(records: list[dict], registry: Registry) -> str:
    """The table, or "" without records."""
    if not records:
        return ""
    frame = records_frame(records, registry)
    body = []
    for task, group in frame.groupby("task", sort=True):
        metric, higher = objective(group, registry)
        rows, not_applicable, _ = build_rows(group, metric, higher)
        for row in rows:
            body.append([task, row.label, f"{metric} {'↑' if higher else '↓'}",
                         row.main.text(), fmt(row.per_iteration_s(), 3),
                         fmt(row.peak_mib(), 3), row.status])
        body += [[task, line.split(":")[0], "", "n/a", "", "", ""] for line in not_applicable]
    return tabulate(body, ["task", "method", "metric", "score ± 95% CI", "s / iter",
                           "peak MiB", "status"], disable_numparse=True)
