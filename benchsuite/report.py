"""The leaderboard: reads every trial record under a results folder and writes
`LEADERBOARD.md` (tables per task) with figures (learning curves, metric vs wall-clock).

Across seeds, a method's metric is the mean over all test episodes of all its seeds, with
a 95% confidence interval from the pooled episode-level variance. Rows computed with an
older version of a plugin's source are marked; bad files are skipped with a warning.
"""

from __future__ import annotations

import datetime
import math
import tomllib
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchsuite.records import TEMPORARY_PREFIX, read_record
from benchsuite.registry import Registry

IGNORED_CONFIG_KEYS = ("seed", "device")
ENVIRONMENT_KEYS = ("device_name", "cpu_count", "torch_threads", "platform", "python", "torch",
                    "numpy", "pillow", "git_commit")
PUBLISHED_FILE = "published.toml"
PUBLISHED_FIELDS = ("task", "method", "metric", "value", "source")


def load_records(results: Path) -> tuple[list[dict], list[str]]:
    """Every valid record under `results`, and one warning line per file skipped."""
    records, warnings, seen = [], [], {}
    for path in sorted(Path(results).rglob("*.json")):
        if path.name.startswith(TEMPORARY_PREFIX):
            continue
        try:
            record = read_record(path)
        except ValueError as error:
            warnings.append(f"skipped {path}: {error}")
            continue
        if record["id"] in seen:  # e.g. two results folders merged: count a trial once
            warnings.append(f"skipped {path}: same trial id as {seen[record['id']]}")
            continue
        seen[record["id"]] = path
        record["_path"] = str(path)
        records.append(record)
    return records, warnings


def config_signature(config: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in config.items() if k not in IGNORED_CONFIG_KEYS))


def pooled(means, stds, counts) -> tuple[float, float]:
    """Mean and 95% CI half-width of the union of several samples given their summaries."""
    n = sum(counts)
    mean = sum(m * c for m, c in zip(means, counts)) / n
    if n < 2:
        return mean, float("nan")
    within = sum((c - 1) * s**2 for s, c in zip(stds, counts))
    between = sum(c * (m - mean) ** 2 for m, c in zip(means, counts))
    return mean, 1.96 * math.sqrt((within + between) / (n - 1) / n)


def fmt(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}"


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


def task_table(frame: pd.DataFrame, metric: str, higher_is_better: bool) -> tuple[str, list]:
    rows, notes = [], []
    labels = method_labels(frame)
    main_steps = {c.get("eval_inner_steps") for c in frame.config}
    step_metrics = {k for ms in frame.metrics for k in ms
                    if k.startswith(f"{metric}_at_") and k.endswith("_steps")}
    step_metrics -= {f"{metric}_at_{k}_steps" for k in main_steps}
    extra_metrics = [*sorted(step_metrics, key=lambda k: int(k.split("_")[-2])),
                     *sorted({k for ms in frame.metrics for k in ms if k.startswith("hypergrad_")})]
    for (method, signature), group in frame.groupby(["method", "signature"], sort=False):
        label = labels[(method, signature)]
        if group.stale.all():
            label += " (older code)"
        elif group.stale.any():
            label += f" (older code in {group.stale.sum()} of {len(group)} trials)"
        done = group[group.status == "finished"]
        statuses = group.status.value_counts().to_dict()
        status = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        if "n/a" in statuses:
            notes.append(f"{label}: n/a — {group.error.iloc[0]}")
        for error in group[~group.status.isin(["finished", "n/a"])].error.dropna().unique():
            notes.append(f"{label}: {error}")
        row = {"method": label, "status": status}
        if len(done):
            mean, ci = pooled([m[metric] for m in done.metrics],
                              [m[f"{metric}_std"] for m in done.metrics],
                              [m[f"{metric}_n"] for m in done.metrics])
            row["_sort"] = -mean if higher_is_better else mean
            row[metric] = f"{fmt(mean)} ± {fmt(ci, 2)}"
            for key in extra_metrics:
                row[key] = extra_metric(done, key, metric)
            per_iter = [t["per_iteration_s"] for t in done.timing if t.get("per_iteration_s")]
            row["s / meta-iter"] = fmt(pd.Series(per_iter).median(), 3) if per_iter else "–"
            row["total s"] = fmt(pd.Series([t["total_s"] for t in done.timing]).mean(), 3)
            row["peak MiB"] = fmt(max(m["peak_bytes"] for m in done.memory) / 2**20, 3)
        else:
            row["_sort"] = math.inf
            row[metric] = "n/a" if "n/a" in statuses else "–"
        rows.append(row)
    rows.sort(key=lambda r: r["_sort"])
    columns = ["method", metric, *extra_metrics, "s / meta-iter", "total s", "peak MiB", "status"]
    table = [[i + 1 if r["_sort"] != math.inf else "", *(r.get(c, "–") for c in columns)]
             for i, r in enumerate(rows)]
    arrow = "↑" if higher_is_better else "↓"
    after = f" after {main_steps.pop()} steps" if len(main_steps) == 1 else ""
    header = ["rank", "method", f"{metric}{after} {arrow} (± 95% CI)", *extra_metrics,
              "s / meta-iter (median)", "total s", "peak MiB", "status"]
    return tabulate(table, header, tablefmt="github"), notes


def extra_metric(done: pd.DataFrame, key: str, metric: str) -> str:
    """Pooled mean ± 95% CI over seeds where every record has the spread, else the mean."""
    summaries = [metric_summary(m, key, metric, c["eval_inner_steps"])
                 for m, c in zip(done.metrics, done.config)]
    if summaries and None not in summaries:
        mean, ci = pooled(*zip(*summaries))
        return "–" if math.isnan(mean) else f"{fmt(mean)} ± {fmt(ci, 2)}"
    values = [m[key] for m in done.metrics if key in m]
    return fmt(sum(values) / len(values)) if values else "–"


def plot_task(frame: pd.DataFrame, task: str, metric: str, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = frame[(frame.status == "finished") & frame.curve.map(bool)]
    if done.empty:
        return []
    labels = method_labels(frame)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for x_key, x_label, suffix in (("iteration", "meta-iteration", "curves"),
                                   ("train_time_s", "training wall-clock (s)", "vs-time")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (method, signature), group in done.groupby(["method", "signature"], sort=True):
            points = pd.DataFrame([p for curve in group.curve for p in curve])
            mean = points.groupby("iteration").mean(numeric_only=True)
            ax.plot(mean[x_key] if x_key != "iteration" else mean.index, mean[f"val_{metric}"],
                    marker=".", label=labels[(method, signature)])
        ax.set_xlabel(x_label)
        ax.set_ylabel(f"validation {metric}")
        ax.set_title(f"{task}: validation {metric} vs {x_label} (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        name = f"{task}-{suffix}.png"
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


def write_report(results: Path, out: Path, registry: Registry) -> tuple[Path, list[str]]:
    records, warnings = load_records(results)
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
                  "paper's). Metric: mean over all test episodes of all seeds, ± 95% CI.", ""]
        for task, group in frame.groupby("task", sort=True):
            metric, higher = _objective(group, registry)
            other_metric = group.objective.map(lambda o: o["metric"]) != metric
            warnings += [f"skipped {path}: its {task} metric is not {metric}"
                         for path in group[other_metric]._path]
            group = group[~other_metric]
            seeds = sorted(group.seed.unique())
            lines += [f"## {task}", "", f"Seeds: {', '.join(map(str, seeds))}. "
                      f"Metric: {metric} ({'higher' if higher else 'lower'} is better).", ""]
            table, notes = task_table(group, metric, higher)
            lines += [table, ""]
            comparison = published_table(group, metric, published)
            if comparison:
                lines += ["Published results (Δ = ours − paper; flagged where the paper's "
                          "number lies outside our 95% CI, widened by the paper's own CI "
                          "where it reports one):", "", comparison, ""]
            if notes:
                lines += ["Notes:", *[f"- {n}" for n in dict.fromkeys(notes)], ""]
            for name in plot_task(group, task, metric, out / "figures"):
                lines += [f"![{name}](figures/{name})", ""]
    path = out / "LEADERBOARD.md"
    path.write_text("\n".join(lines))
    return path, warnings


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


def metric_summary(metrics: dict, key: str, main_key: str, main_steps: int):
    """(mean, std, n) of a test metric, or None; the main-steps metric stores its spread
    under the unprefixed name."""
    spread = key if f"{key}_std" in metrics else (
        main_key if key == f"{main_key}_at_{main_steps}_steps" else None)
    if key not in metrics or spread is None or f"{spread}_std" not in metrics:
        return None
    return metrics[key], metrics[f"{spread}_std"], metrics[f"{spread}_n"]


def follows(config: dict, entry: dict) -> bool:
    """Whether a trial's config has every setting the published protocol names."""
    return all(str(config.get(k)) == str(v) for k, v in entry.get("config", {}).items())


def published_table(frame: pd.DataFrame, metric: str, published: list[dict]) -> str:
    """"paper | ours ± 95% CI | Δ" rows for the published numbers whose protocol the
    task's records follow."""
    done = frame[frame.status == "finished"]
    labels = method_labels(frame)
    rows = []
    for entry in published:
        if done.empty or entry["task"] != done.task.iloc[0]:
            continue
        matching = done[(done.method == entry["method"])
                        & done.config.map(lambda c, e=entry: follows(c, e))]
        for signature, group in matching.groupby("signature", sort=False):
            summaries = [metric_summary(m, entry["metric"], metric, c["eval_inner_steps"])
                         for m, c in zip(group.metrics, group.config)]
            if None in summaries:
                continue
            mean, ci = pooled(*zip(*summaries))
            delta = mean - entry["value"]
            paper_ci = entry.get("ci95", 0.0)
            outside = abs(delta) > math.hypot(ci, paper_ci)
            paper = fmt(entry["value"]) + (f" ± {fmt(paper_ci, 2)}" if paper_ci else "")
            rows.append([labels[(entry["method"], signature)], entry["metric"],
                         f"{paper} ({entry['source']})", f"{fmt(mean)} ± {fmt(ci, 2)}",
                         f"{delta:+.3g}", "OUTSIDE" if outside else "within",
                         len(group)])
    if not rows:
        return ""
    return tabulate(rows, ["method", "metric", "paper", "ours ± 95% CI", "Δ",
                           "paper vs our CI", "seeds"], tablefmt="github", disable_numparse=True)


def _is_stale(record: dict, registry: Registry) -> bool:
    code = record.get("code") or {}
    method, task = registry.methods.get(record["method"]), registry.tasks.get(record["task"])
    return bool((method and code.get("method") != method.source_hash) or
                (task and code.get("task") != task.source_hash))


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
