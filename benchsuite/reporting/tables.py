"""A task's section of the leaderboard: the main table (ten columns), the per-step scores
and the diagnostics below it, the published comparison, the protocols and the command that
runs the task's grid at the papers' budget."""

from __future__ import annotations

import shlex

import pandas as pd

from benchsuite.reporting import ranking
from benchsuite.reporting.cells import (
    PARTIAL,
    ROBUST,
    cell_for,
    fmt,
    percent,
    scalar_cell,
    step_counts,
)
from benchsuite.reporting.document import Notes, Section, Table
from benchsuite.reporting.published import CAPTION, HEADER, published_rows
from benchsuite.reporting.rows import CONVERGENCE_TAIL, Row, build_rows
from benchsuite.storage.records import FINISHED

BUDGET_KEYS = ("inner_steps", "eval_inner_steps", "iterations", "meta_batch")
"""What each row ran with: a protocol's source gives its paper's set-up, and a command line
may set iterations and meta-batch for a whole grid."""


def step_text(cell) -> str:
    """A further step count's score, with what diverged (share of episodes, failed seeds)
    when anything did, in short."""
    if not cell.scores:
        return "–"
    if not cell.partial:
        return cell.text()
    fraction = cell.diverged_fraction()
    what = [f"div. {percent(fraction) if fraction is not None else 'some'}"]
    what += [f"failed {cell.failed}/{len(cell.scores)}"] if cell.failed else []
    return f"{cell.text()} ({', '.join(what)})"


def main_table(rows: list[Row], ranks: dict[str, int], metric: str, higher: bool,
               main_steps: list[int]) -> Table:
    floor = ranking.best_floor(rows, higher)
    body = []
    for row in rows:
        rank = (ranking.agreement(row, rows) if row.implementation_of
                else str(ranks.get(row.label, "–")))
        body.append([rank, row.label, row.protocol_label, row.main.text(),
                     row.main.diverged_text(),
                     ranking.floor_verdict(row, floor, higher) or "no floor",
                     fmt(row.per_iteration_s(), 3), fmt(row.peak_mib(), 3),
                     row.converged(metric, higher), row.status])
    arrow = "↑" if higher else "↓"
    steps = "/".join(map(str, main_steps)) or "?"
    header = ["rank", "method", "protocol", f"{metric} after {steps} steps {arrow} ± 95% CI",
              "diverged", "vs best floor", "s / iter", "peak MiB", "converged", "status"]
    return Table("", header, body, main_legend(rows, metric), numeric=(0, 3, 6, 7))


def main_legend(rows: list[Row], metric: str) -> str:
    lines = [f"Score: per seed, the interquartile mean of {metric} over all its test "
             "episodes, a non-finite episode counting as the worst score (one test "
             "episode: its mean); per row, the mean of the seed scores ± the 95% t interval "
             "over seeds. A seed fails when its meta-training diverged or more than a quarter "
             "of its episodes did. Rank: rows with fewer failed seeds first, then by score; rows "
             "not significantly different (paired over seeds, 95%) from their group's best "
             "share its rank. Diverged: non-finite test episodes, averaged over seeds, and "
             "the failed seeds. vs best floor: BELOW only for a significant shortfall (or a "
             "failed seed), (n.s.) where the difference is not significant. s / iter: median "
             "seconds per meta-iteration; peak MiB: peak memory above the process's start. "
             f"Converged: \"no\" where validation {metric} still improved significantly over "
             f"the last {percent(CONVERGENCE_TAIL)} of meta-training (docs/statistics.md)."]
    if any(r.main.partial for r in rows if r.main.finite):
        lines.append(f"{PARTIAL} over the finite episodes or the seeds that did not fail "
                     "only; the diverged column gives what was left out.")
    if any(r.implementation_of for r in rows):
        lines.append("Rows marked \"checks X\" re-implement X (an implementation check, not "
                     "ranked): \"agrees\" where the paired difference is not significant.")
    return " ".join(lines)


def per_step_table(rows: list[Row], metric: str, other_steps: list[int],
                   higher: bool) -> Table | None:
    if not other_steps:
        return None
    body = [[row.label, *(step_text(cell_for(row.scored, metric, s, ROBUST, higher))
                          for s in other_steps)] for row in rows]
    return Table("Scores after other numbers of test-time steps (the same statistic; div.: "
                 "diverged episodes, failed: seeds):",
                 ["method", *(f"after {s}" for s in other_steps)], body,
                 numeric=tuple(range(1, len(other_steps) + 1)))


def diagnostics_table(rows: list[Row], metric: str, higher: bool,
                      baseline: str | None) -> Table:
    reference = ranking.baseline_row(rows, baseline)
    hypergrad = sorted({k for r in rows for ms in r.done.metrics for k in ms
                        if k.startswith("hypergrad_")})
    header = ["method", "mean (finite episodes)"] + (["median"] if metric == "mse" else [])
    if reference is not None:
        header.append(f"P(> {reference.label}) seeds / episodes")
    header += [*hypergrad, "trained with inner steps", "scored after steps",
               "meta-iterations", "meta-batch", "total s"]
    body = []
    for row in rows:
        cells = [row.label, row.mean.text()]
        if metric == "mse":
            cells.append(row.mean.median_text() if row.mean.scores else "–")
        if reference is not None:
            cells.append(ranking.improvement_text(row, reference, higher))
        cells += [scalar_cell(row.done, key).text() for key in hypergrad]
        cells += [", ".join(map(str, sorted({int(c[key]) for c in row.scored.config
                                             if key in c}))) or "–" for key in BUDGET_KEYS]
        body.append(cells + [fmt(row.total_s(), 3)])
    legend = "Mean: the mean over finite test episodes, as papers report it."
    if reference is not None:
        legend += (f" P(> {reference.label}): the share of paired seeds on which the row's "
                   "seed score beats the baseline's (ties ½, a failed seed loses); after the "
                   "slash, the share of paired test episodes, where there are episodes to "
                   "pair (not for a single test episode). The baseline is `benchsuite report "
                   "--baseline`, else the first method under a paper protocol.")
    return Table("Diagnostics:", header, body, legend, numeric=(1,))


def paper_budget_command(task: str, rows: list[Row]) -> str:
    """A ready command that runs this task's rows at the papers' budget on a GPU: their
    named protocol where every row ran one, else their methods on the task."""
    named = {p["name"] for r in rows for p in r.protocols if p.get("kind") == "named"}
    seeds = max((len(r.group.seed.unique()) for r in rows), default=1)
    grid = (["--protocol", named.pop()] if len(named) == 1 and all(
        any(p.get("kind") == "named" for p in r.protocols) for r in rows)
        else ["--methods", ",".join(sorted({r.method for r in rows})), "--tasks", task])
    return shlex.join(["benchsuite", "run", *grid, "--budget", "paper", "--seeds",
                       str(max(seeds, 5)), "--device", "cuda", "--out", "results/paper"])


def protocol_notes(rows: list[Row]) -> Notes | None:
    """Where each row's settings come from: the protocols' sources and deviations."""
    lines = []
    for row in rows:
        for protocol in row.protocols:
            if protocol["kind"] in ("defaults", "floor"):
                continue
            text = f"{row.label} — {protocol['label']}: {protocol['source'].rstrip('.')}."
            if protocol.get("deviations"):
                text += f" Deviations: {protocol['deviations']}"
            lines.append(text)
    if not lines:
        return None
    return Notes("Protocols (protocols/; rows not listed run on the task's defaults or are "
                 "floors). A source gives its paper's set-up; the diagnostics' step, "
                 "meta-iteration and meta-batch columns give what ran, where a command line "
                 "set them:", list(dict.fromkeys(lines)))


def task_section(task: str, frame: pd.DataFrame, metric: str, higher: bool,
                 published: list[dict], baseline: str | None,
                 implementations: dict[str, str] | None = None) -> tuple[Section, list[Row]]:
    """The task's section and its rows (in table order, for the figures). `implementations`
    maps a method to the method it re-implements (rows/ranking: shown as checks)."""
    rows, not_applicable, notes = build_rows(frame, metric, higher, implementations)
    main_steps, other_steps = step_counts(frame[frame.status == FINISHED], metric)
    ranks = ranking.ranks_of(rows, higher)
    rows = ranking.order(rows, ranks, higher)
    seeds = ", ".join(map(str, sorted(frame.seed.unique())))
    section = Section(task, f"Seeds: {seeds}. Metric: {metric} "
                            f"({'higher' if higher else 'lower'} is better).")
    if rows:
        section.tables.append(main_table(rows, ranks, metric, higher, main_steps))
        steps = per_step_table(rows, metric, other_steps, higher)
        section.tables += [steps] if steps else []
        section.tables.append(diagnostics_table(rows, metric, higher, baseline))
    comparison = published_rows(frame, metric, higher, published)
    if comparison:
        section.tables.append(Table(CAPTION, HEADER, comparison))
    protocols = protocol_notes(rows)
    section.notes += [protocols] if protocols else []
    if rows:
        section.notes.append(Notes(
            "At the papers' budget (their iterations and meta-batch, on a GPU; add "
            "`--data-root`/`--download` for data-backed tasks):",
            [paper_budget_command(task, rows)], code=True))
    if not_applicable:
        section.notes.append(Notes("Not applicable here (one line per incompatible pair):",
                                   list(dict.fromkeys(not_applicable))))
    if notes:
        section.notes.append(Notes("Notes:", list(dict.fromkeys(notes))))
    return section, rows
