"""Published numbers beside ours (`published.toml` files under a results folder).

A paper's number is one run; ours is the mean of n seeds. The comparison asks whether the
paper's run is a plausible run of ours: its distance to our mean against the 95%
prediction range of one more run, t·sd·√(1 + 1/n) (sd: our seed-to-seed spread), widened
by the paper's own interval where it reports one. With one seed, our episode interval
stands in (evaluation noise only). The verdict says only what that range decides:
- `OUTSIDE`: the paper's number lies outside the range;
- `within`: it lies inside, and the range is narrow enough to mean agreement — inside the
  paper's number ± `margin` (a share of it; MARGIN unless the entry sets `margin`);
- `undecided`: inside, but the range is wider than that margin.
Our score is the mean over finite episodes (the papers' statistic), with the table's marks;
beside it the ROBUST score (cells.py), which shows where a few blown-up episodes, finite or
not, carry the mean.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pandas as pd

from benchsuite.reporting.cells import MEAN, ROBUST, Cell, cell_for, fmt, scalar_cell, scored_trials
from benchsuite.reporting.rows import method_labels

PUBLISHED_FILE = "published.toml"
PUBLISHED_FIELDS = ("task", "method", "metric", "value", "source")
MARGIN = 0.25
"""The default agreement margin, as a share of the published number."""
CAPTION = ("Published results (Δ = ours − paper; ours is the mean over finite episodes with "
           "the marks above, beside it the table's robust score). A paper's number is one "
           "run, set against the 95% range of one run of ours, t·sd·√(1 + 1/n) over our "
           "seeds, widened by the paper's own CI where it reports one: \"within\" only where "
           "that range lies inside the paper's number ± 25% (or the entry's margin), "
           "\"undecided\" where it contains the paper's number but is wider:")
HEADER = ["method", "metric", "paper", "ours ± 95% CI", "diverged", "ours, robust", "Δ",
          "one run of ours: 95% range", "paper vs one run", "seeds"]


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


def published_cell(group: pd.DataFrame, key: str, metric: str, statistic: str,
                   higher_is_better: bool) -> Cell | None:
    """The Cell of a published metric name (`mse_at_5_steps`, or the main `mse`)."""
    if key == metric:
        steps = {int(c.get("eval_inner_steps", 0)) for c in group.config}
        return cell_for(group, metric, steps.pop(), statistic, higher_is_better) \
            if len(steps) == 1 else None
    if key.startswith(f"{metric}_at_") and key.endswith("_steps"):
        return cell_for(group, metric, int(key.split("_")[-2]), statistic, higher_is_better)
    return scalar_cell(group, key)


def verdict(delta: float, spread: float, value: float, margin: float) -> str:
    if not math.isfinite(spread):
        return "undecided"
    if abs(delta) > spread:
        return "OUTSIDE"
    return "within" if abs(delta) + spread <= margin * abs(value) else "undecided"


def published_rows(frame: pd.DataFrame, metric: str, higher_is_better: bool,
                   published: list[dict]) -> list[list]:
    """One row per published number with trials that follow its protocol (HEADER)."""
    scored = scored_trials(frame)
    labels = method_labels(frame)
    rows = []
    for entry in published:
        if scored.empty or entry["task"] != scored.task.iloc[0]:
            continue
        matching = scored[(scored.method == entry["method"])
                          & scored.config.map(lambda c, e=entry: follows(c, e))]
        for signature, group in matching.groupby("signature", sort=False):
            cell = published_cell(group, entry["metric"], metric, MEAN, higher_is_better)
            if cell is None or not cell.finite:
                continue
            interval, unit = cell.interval()
            paper_ci = entry.get("ci95", 0.0)
            spread = math.hypot(interval.prediction_half_width() if unit == "seeds"
                                else interval.half_width, paper_ci)
            delta = interval.mean - entry["value"]
            paper = fmt(entry["value"]) + (f" ± {fmt(paper_ci, 2)}" if paper_ci else "")
            robust = published_cell(group, entry["metric"], metric, ROBUST, higher_is_better)
            rows.append([labels[(entry["method"], signature)], entry["metric"],
                         f"{paper} ({entry['source']})", cell.text(), cell.diverged_text(),
                         robust.text() if robust is not None else "–",
                         f"{delta:+.3g}", f"± {fmt(spread, 2)}" + (
                             " (episodes, 1 seed)" if unit == "episodes" else ""),
                         verdict(delta, spread, entry["value"], entry.get("margin", MARGIN)),
                         len(cell.scores)])
    return rows
