"""The leaderboard: reads every trial record under a results folder and writes
`LEADERBOARD.md` and `index.html` (per task: the main table, per-step scores, diagnostics,
the published comparison, protocols) with figures (learning curves with seed bands, and
the cost figure: one panel per measure).

The parts, one job each: cells.py (one score of a row, seed by seed), rows.py (the rows),
ranking.py (ranks, floors, the baseline), published.py (papers' numbers beside ours),
tables.py (a task's section), figures.py, markdown.py and html.py (rendering), frame.py
(the records as one table), this module (reading the records and putting it together).
Statistics: docs/statistics.md. Rows computed with an older version of a plugin's source
are marked; bad files are skipped with a warning.
"""

from __future__ import annotations

import datetime
import shlex
from pathlib import Path

import pandas as pd

from benchsuite.reporting import html, markdown
from benchsuite.reporting.document import Document, Notes
from benchsuite.reporting.figures import plot_task
from benchsuite.reporting.frame import objective, records_frame
from benchsuite.reporting.published import load_published
from benchsuite.reporting.tables import task_section
from benchsuite.running import gridfile
from benchsuite.running.registry import Registry
from benchsuite.storage.results import read_records

ENVIRONMENT_KEYS = ("device_name", "cpu_count", "torch_threads", "platform", "python", "torch",
                    "numpy", "pillow", "git_commit")


def write_report(results: Path, out: Path, registry: Registry,
                 baseline: str | None = None) -> tuple[Path, list[str]]:
    """Writes OUT/LEADERBOARD.md, OUT/index.html and OUT/figures/; the Markdown file's
    path and the warnings (files skipped). `baseline`: the method the probability of
    improvement compares with (default: per task, the first under a paper protocol)."""
    records, warnings = read_records(results)
    out.mkdir(parents=True, exist_ok=True)
    preamble = [Notes(f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} "
                      f"from {len(records)} trial records in `{results}`.")]
    sections = []
    if records:
        frame = records_frame(records, registry)
        preamble += environment_notes(records)
        published, problems = load_published(results)
        warnings += problems
        budgets = ", ".join(sorted(frame.config.map(lambda c: c.get("budget", "?")).unique()))
        preamble.append(Notes(f"Budget: {budgets} (quick = CPU-sized iteration counts; paper "
                              "= the paper's). Scores are seed-level: the mean of per-seed "
                              "scores ± the 95% t interval over seeds (docs/statistics.md)."))
        implementations = {name: plugin.cls.implementation_of
                           for name, plugin in registry.methods.items()
                           if plugin.cls.implementation_of}
        methods = registry.canonical_methods()
        for task, group in frame.groupby("task", sort=True):
            metric, higher = objective(group, registry)
            other_metric = group.objective.map(lambda o: o["metric"]) != metric
            warnings += [f"skipped {path}: its {task} metric is not {metric}"
                         for path in group[other_metric]._path]
            group = group[~other_metric]
            section, rows = task_section(task, group, metric, higher, published, baseline,
                                         implementations)
            section.figures = plot_task(group, task, metric, out / "figures", rows, higher,
                                        methods)
            sections.append(section)
    document = Document("Leaderboard", preamble, sections)
    path = out / "LEADERBOARD.md"
    path.write_text(markdown.render(document))
    (out / "index.html").write_text(html.render(document))
    return path, warnings


def environment_notes(records: list[dict]) -> list[Notes]:
    """Hardware, software and the exact commands behind the records."""
    provenance = pd.DataFrame([r["provenance"] for r in records if r["provenance"]])
    if provenance.empty:
        return []
    notes = [Notes("Environment: " + "; ".join(
        f"{key} {', '.join(sorted(map(str, provenance[key].dropna().unique())))}"
        for key in ENVIRONMENT_KEYS if key in provenance))]
    commands = sorted(provenance.get("command", pd.Series(dtype=str)).dropna().unique())
    commands = [c for c in commands if c]
    grids = grid_files(commands)
    if grids:
        notes.append(Notes("Grid files (what the commands below ran: methods, tasks, seeds "
                           "and settings): " + ", ".join(f"`{g}`" for g in grids) + "."))
    if commands:
        notes.append(Notes("Commands:", commands, code=True))
    return notes


def grid_files(commands: list[str]) -> list[str]:
    """The packaged grid files (`--config NAME`) the commands ran, as repository paths."""
    names = []
    for command in commands:
        words = shlex.split(command)
        names += [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--config"]
        names += [word.split("=", 1)[1] for word in words if word.startswith("--config=")]
    packaged = gridfile.packaged()
    return sorted({f"benchsuite/grids/{name}.toml" for name in names if name in packaged})
