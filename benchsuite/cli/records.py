"""`benchsuite report`, `export` and `verify`: what the stored records say, and whether it
still comes back."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from benchsuite.cli.app import app, check_folder, fail_io, fail_usage
from benchsuite.core.errors import UsageError


@app.command()
def report(
    results: Path = typer.Argument(Path("results"), help="Folder of trial records."),
    out: Path = typer.Option(Path("reports"), help="Folder for LEADERBOARD.md and figures."),
    plugins: list[Path] = typer.Option([], help="Extra plugin folders (to mark stale rows)."),
    baseline: str = typer.Option(None, help="Method the probability of improvement compares "
                                            "with (default: per task, the first method "
                                            "under a paper protocol)."),
) -> None:
    """Render LEADERBOARD.md, index.html and figures from stored trial records."""
    from benchsuite.running import registry as plugin_registry

    if not results.is_dir():
        fail_usage(UsageError(f"results folder {str(results)!r} does not exist; run "
                              "`benchsuite run` first or pass the folder holding records"))
    check_folder(out, "--out")
    try:
        registry = plugin_registry.discover(plugins)
        if baseline is not None:
            registry.method(baseline)
    except UsageError as error:
        fail_usage(error)
    write_leaderboard(results, out, registry, baseline, said="wrote")


def write_leaderboard(results: Path, out: Path, registry, baseline: str | None,
                      said: str) -> None:
    """The leaderboard of `results` in `out` (`report`, and `run --report`), its warnings on
    stderr, then "`said` LEADERBOARD.md and index.html"; exit 74 when it cannot be
    written."""
    from benchsuite.reporting.report import write_report

    try:
        path, warnings = write_report(results, out, registry, baseline)
    except OSError as error:
        fail_io(error, "could not write the report")
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{said} {path} and {path.parent / 'index.html'}")


@app.command()
def export(
    results: Path = typer.Argument(..., help="Folder of trial records (or one record)."),
    format_: str = typer.Option("csv", "--format", help="csv, or parquet (needs pyarrow)."),
    curves: bool = typer.Option(False, help="Also write one row per learning-curve point."),
    out: Path = typer.Option(None, help="Folder for trials.<format> (and curves.<format>); "
                                        "default: RESULTS/export."),
) -> None:
    """Write the records as flat tables: one row per trial (and per curve point)."""
    from benchsuite.reporting.export import export as export_tables

    if not results.exists():
        fail_usage(UsageError(f"results folder {str(results)!r} does not exist"))
    target = out if out is not None else (results if results.is_dir() else
                                          results.parent) / "export"
    check_folder(target, "--out")
    try:
        written, skipped = export_tables(results, target, format_, curves)
    except UsageError as error:
        fail_usage(error)
    except OSError as error:
        fail_io(error, "could not write the export")
    for line in skipped:
        typer.echo(f"warning: {line}", err=True)
    typer.echo("wrote " + ", ".join(map(str, written)))


@app.command()
def verify(
    results: Path = typer.Argument(Path("results"), help="Folder of trial records."),
    sample: str = typer.Option("one-per-task", help="one-per-task (the cheapest finished "
                                                    "record of each task) or all."),
    quick: bool = typer.Option(False, help="Cheap check: re-run each trial only up to its "
                               "first learning-curve point and compare the curve there; "
                               "the test metrics, per-episode scores, the rest of the curve "
                               "and diverged records are not checked (default: whole "
                               "trials, every number a report prints)."),
    data_root: Path = typer.Option(None, help="Folder holding the data sets (default: "
                                             "$BENCHSUITE_DATA or ~/.cache/benchsuite/data)."),
    plugins: list[Path] = typer.Option([], help="Extra plugin folders."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress lines."),
) -> None:
    """Re-run stored trials and check that they give the stored numbers."""
    from tabulate import tabulate

    from benchsuite.blocks import data
    from benchsuite.running import registry as plugin_registry
    from benchsuite.running import verify as verification

    if not results.is_dir():
        fail_usage(UsageError(f"results folder {str(results)!r} does not exist; pass the "
                              "folder holding the records to check"))
    if sample not in verification.SAMPLES:
        fail_usage(UsageError(f"unknown --sample {sample!r}; valid: "
                              f"{', '.join(verification.SAMPLES)}"))
    if data_root is not None:
        os.environ[data.DATA_ROOT_VARIABLE] = str(data_root.expanduser().resolve())
    try:
        registry = plugin_registry.discover(plugins)
    except UsageError as error:
        fail_usage(error)
    verdicts, warnings = verification.verify_folder(
        results, registry, sample, quick,
        progress=(lambda line: None) if quiet else (lambda line: typer.echo(line, err=True)))
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not verdicts:
        fail_usage(UsageError(f"no finished trial records in {str(results)!r} to verify"))
    typer.echo(tabulate([v.row() for v in verdicts], verification.HEADER))
    if quick:
        typer.echo("quick: each re-run stopped at the record's first learning-curve point; "
                   f"not checked: {', '.join(verification.QUICK_SKIPS)} (drop --quick to "
                   "check every number a report prints).")
    results_seen = [v.result for v in verdicts]
    counts = ", ".join(f"{results_seen.count(r)} {r}" for r in dict.fromkeys(results_seen))
    failed = [v for v in verdicts if not v.passed]
    typer.echo(f"{len(verdicts)} records checked: {counts}"
               + (f" — {len(failed)} failed verification" if failed else ""))
    if failed:
        raise typer.Exit(1)
