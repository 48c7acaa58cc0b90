"""Command-line interface: `benchsuite run | report | export | verify | sweep | tune | list`.
It parses the command line and calls the module that does the work.

Usage errors — ours and click's own (an unknown option, a value of the wrong type) — print
one line (`error: …`) and exit 2 before anything is written. `run` exits 0 when every
trial of the grid finished (or is n/a), 1 when some did not (with a table of them), 74
when a record or a report could not be written where asked (one line says where it is
instead, and what to do), 130 / 143 when stopped by SIGINT / SIGTERM (after saying what
was saved).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import typer
import typer.core

from benchsuite.core.errors import UsageError

try:  # Typer 0.24 and later carry their own copy of click
    from typer._click import exceptions as click_errors
except ImportError:
    from click import exceptions as click_errors  # type: ignore[no-redef]

EXIT_IO = 74  # sysexits' EX_IOERR: something could not be written


class OneLineErrors(typer.core.TyperGroup):
    """Prints every usage error on one line, `error: …`, and exits with its code (2),
    where Typer would draw a box around click's own errors."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except click_errors.NoArgsIsHelpError as bare:
            if not standalone_mode:
                raise
            bare.show()
            sys.exit(bare.exit_code)
        except click_errors.ClickException as error:
            if not standalone_mode:
                raise
            context = getattr(error, "ctx", None)  # a UsageError's command
            where = f" (see `{context.command_path} --help`)" if context is not None else ""
            message = " ".join(error.format_message().split())
            typer.echo(f"error: {message}{where}", err=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True,
                  help="Benchmark hypergradient (bilevel) meta-learning methods.")


def _print_version(value: bool) -> None:
    if value:
        from benchsuite import __version__

        typer.echo(f"benchsuite {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_print_version,
                                      is_eager=True, help="Print the version and exit.")
         ) -> None:
    """Benchmark hypergradient (bilevel) meta-learning methods."""


def fail_usage(error: Exception) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


def fail_io(error: OSError, doing: str) -> NoReturn:
    """One line for an I/O error: what could not be done, the path, the cause, the fix."""
    from benchsuite.storage.records import io_problem

    typer.echo(f"error: {doing}: {io_problem(error)}", err=True)
    raise typer.Exit(EXIT_IO)


def check_folder(folder: Path, option: str) -> None:
    """Exit 2 when `option`'s output folder cannot be written (benchsuite.storage.records)."""
    from benchsuite.storage.records import folder_problem

    problem = folder_problem(folder, option)
    if problem:
        fail_usage(UsageError(problem))


@app.command()
def run(
    ctx: typer.Context,
    config: str = typer.Option(None, "--config", help="A grid file (TOML: these options, "
                               "[set], [task.NAME] and [method.NAME] settings) or the name "
                               "of a packaged grid (demo, reference-…); options given here "
                               "win. Without --config, --methods, --tasks or --protocol, "
                               "`run` runs the demo grid."),
    methods: str = typer.Option("all", help="Comma-separated method names, or 'all'."),
    tasks: str = typer.Option("all", help="Comma-separated task names, or 'all'."),
    seeds: int = typer.Option(1, help="Number of seeds (0 … N−1) per method × task."),
    iterations: int = typer.Option(None, help="Meta-iterations (default: the task's)."),
    meta_batch: int = typer.Option(None, help="Tasks per meta-batch (default: the task's)."),
    budget: str = typer.Option("quick", help="'paper' for the task's own iterations (the "
                                             "paper's), 'quick' for its CPU-sized budget."),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:N."),
    out: Path = typer.Option(Path("results"), help="Folder for trial records."),
    set_: list[str] = typer.Option([], "--set", help="Override: key=value or name.key=value."),
    plugins: list[Path] = typer.Option([], help="Extra folder of method/task plugin files."),
    executor: str = typer.Option("local", help="local (a fresh process per trial), ray "
                                               "(a Ray task per trial) or inline."),
    address: str = typer.Option(None, help="Ray cluster to use with --executor ray (e.g. "
                                           "auto, or HOST:PORT); default: a local instance."),
    timeout: float = typer.Option(None, help="Wall-clock limit per trial, in seconds."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Trials side by side with --executor "
                             "local, each in its own process with 1/N of the cores as torch "
                             "threads (or OMP_NUM_THREADS if set). Ray schedules by itself."),
    force: bool = typer.Option(False, help="Re-run trials whose record already exists."),
    dry_run: bool = typer.Option(False, help="Print the trial grid and run nothing."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    data_root: Path = typer.Option(None, help="Folder holding the data sets (default: "
                                             "$BENCHSUITE_DATA or ~/.cache/benchsuite/data)."),
    download: bool = typer.Option(False, help="Fetch missing data sets into the data root."),
    nondeterministic: bool = typer.Option(
        False, "--nondeterministic",
        help="CUDA trials: skip deterministic algorithms and the cuBLAS/cuDNN settings "
             "they need (PyTorch's defaults; not reproducible). Recorded in the config."),
    protocol: str = typer.Option(None, help="A named protocol (an experiment of a paper or "
                                            "library, see `benchsuite list`): its task, "
                                            "methods and settings."),
) -> None:
    """Run methods × tasks × seeds and write one record per trial."""
    from benchsuite.blocks import data
    from benchsuite.running import executors, gridfile, planning, runner
    from benchsuite.running import registry as plugin_registry
    from benchsuite.storage import reproducibility

    try:
        o, grid = _run_options(ctx, config)
    except UsageError as error:
        fail_usage(error)
    executors.quiet_library_warnings()  # planning imports the plugins and their libraries
    # Through the environment, not the config: where data lives is not part of a trial's
    # identity, and worker processes inherit it.
    if o["data_root"] is not None:
        os.environ[data.DATA_ROOT_VARIABLE] = str(Path(o["data_root"]).expanduser().resolve())
    if o["download"]:
        os.environ[data.DOWNLOAD_VARIABLE] = "1"
    try:
        trial_executor = executors.make_executor(o["executor"], timeout=o["timeout"],
                                                 address=o["address"], jobs=o["jobs"])
        registry = plugin_registry.discover(o["plugins"])
        specs = planning.plan_run(registry, o, grid.overrides, out=o["out"],
                                  command=shlex.join(["benchsuite", *sys.argv[1:]]))
    except UsageError as error:
        fail_usage(error)
    # cuBLAS reads its workspace setting once, so workers get it from their start
    reproducibility.prepare_environment(deterministic=not o["nondeterministic"])
    if o["dry_run"]:
        for spec in specs:
            state = f"n/a: {spec.incompatible}" if spec.incompatible else (
                f"{spec.config['iterations']} iterations, meta-batch {spec.config['meta_batch']}")
            typer.echo(f"{spec.label()}  [{state}]  -> {spec.path}")
        typer.echo(f"{len(specs)} trials (dry run: nothing executed)")
        return
    if grid.source != gridfile.NONE:
        typer.echo(f"grid {grid.source}: {len(specs)} trials", err=True)
    try:
        summary = runner.execute(specs, trial_executor, force=o["force"], quiet=o["quiet"])
    except OSError as error:  # the results folder itself could not be made
        fail_io(error, "could not create the results folder")
    kept = f" ({len(summary.kept)} skipped: kept from earlier runs)" if summary.kept else ""
    if summary.cleaned:
        typer.echo(f"note: removed {summary.cleaned} temporary files that killed writers "
                   "left beside records", err=True)
    for line in summary.kept_instead:
        typer.echo(f"note: {line}", err=True)
    unsaved = report_unsaved(summary, o["out"])
    if summary.interrupted:
        typer.echo(f"\nstopped by {summary.interrupted}: {len(summary.written)} records written "
                   f"by this run ({summary.counts(summary.written)}){kept}, "
                   f"{summary.planned - len(summary.rows)} trials not run; every record in "
                   f"{o['out']} is complete; re-run the same command to run the rest",
                   err=True)
        raise typer.Exit(128 + signal.Signals[summary.interrupted].value)
    typer.echo(f"{summary.planned} trials: {summary.counts()}{kept}; records in {o['out']}")
    if unsaved:
        raise typer.Exit(EXIT_IO)
    if summary.unfinished:
        typer.echo(f"{len(summary.unfinished)} trials did not finish:\n"
                   f"{summary.unfinished_table()}", err=True)
        raise typer.Exit(1)


def report_unsaved(summary, out: Path) -> bool:
    """Say, in one line, which records the results folder did not take and where they
    are (printing those no folder took as JSON lines on stdout); True if any."""
    from benchsuite.running.runner import unstored_lines

    if not summary.write_errors:
        return False
    if not summary.elsewhere and not summary.unstored:
        typer.echo(f"warning: {len(summary.write_errors)} record writes failed and "
                   f"succeeded when retried (first: {summary.write_errors[0]}); every "
                   f"record is in {out}", err=True)
        return False
    folders = sorted({str(p.parents[2]) for p in summary.elsewhere.values()})
    where = (f"{len(summary.elsewhere)} are in {', '.join(folders)} (copy them back with "
             f"`cp -rn {folders[0]}/. {out}/` once fixed)" if folders else "")
    nowhere = (f"{len(summary.unstored)} could be stored nowhere and follow on stdout as "
               "JSON lines" if summary.unstored else "")
    typer.echo(f"error: {len(summary.elsewhere) + len(summary.unstored)} records could not "
               f"be written to {out} ({summary.write_errors[0]}); "
               + "; ".join(part for part in (where, nowhere) if part), err=True)
    for line in unstored_lines(summary):
        typer.echo(line)
    return True


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option `name` was written on the command line."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _run_options(ctx: typer.Context, config: str | None):
    """`run`'s parameters by name, those of its grid file (`--config`) filled in where the
    command line does not give them, and the grid file."""
    grid = _grid(ctx, config)
    return {**ctx.params, **{k: v for k, v in grid.options.items() if not _given(ctx, k)}}, grid


def _grid(ctx: typer.Context, config: str | None):
    """The grid file of `--config`; the demo grid when the command line names neither a
    grid, methods, tasks nor a protocol; else none."""
    from benchsuite.running import gridfile

    if config is None and any(_given(ctx, name) for name in gridfile.SELECTION):
        return gridfile.Grid(gridfile.NONE)
    parameters = {p.name: p for p in ctx.command.params
                  if p.name not in (None, "config", "set_")}
    return gridfile.read(config or gridfile.DEMO, parameters, ctx)


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
    from benchsuite.reporting.report import write_report
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
    try:
        path, warnings = write_report(results, out, registry, baseline)
    except OSError as error:
        fail_io(error, "could not write the report")
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {path} and {path.parent / 'index.html'}")


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


@app.command()
def migrate(
    results: Path = typer.Argument(..., help="Folder of trial records."),
    full: bool = typer.Option(False, help="Re-run whole trials and compare every number a "
                              "report prints (default: up to each record's first "
                              "learning-curve point, as `verify --quick`)."),
    plugins: list[Path] = typer.Option([], help="Extra plugin folders."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress lines."),
) -> None:
    """Carry records over a code change that leaves their numbers as they were: each
    record's trial is re-planned from its stored command and re-run under the current
    code; a record whose numbers come back is re-keyed to the new trial id."""
    from tabulate import tabulate

    from benchsuite.blocks import data
    from benchsuite.running import migrate as migration
    from benchsuite.running import planning
    from benchsuite.running import registry as plugin_registry

    if not results.is_dir():
        fail_usage(UsageError(f"results folder {str(results)!r} does not exist; pass the "
                              "folder holding the records to migrate"))
    try:
        registry = plugin_registry.discover(plugins)
    except UsageError as error:
        fail_usage(error)
    run_command = typer.main.get_command(app).get_command(None, "run")  # type: ignore[attr-defined]
    plans: dict[str, dict] = {}

    def plan_of(record: dict):
        command = record["provenance"].get("command") or ""
        if command not in plans:
            plans[command] = {}
            words = shlex.split(command)
            if words[:2] == ["benchsuite", "run"]:
                ctx = run_command.make_context("run", words[2:])
                options, grid = _run_options(ctx, ctx.params["config"])
                if options["data_root"] is not None:
                    os.environ[data.DATA_ROOT_VARIABLE] = str(
                        Path(options["data_root"]).expanduser().resolve())
                specs = planning.plan_run(registry, options, grid.overrides, out=results,
                                          command=command)
                plans[command] = {(s.method, s.task, s.seed): s for s in specs
                                  if not s.incompatible}
        return plans[command].get((record["method"], record["task"], record["seed"]))

    paths = [p for p in results.rglob("*.json") if not p.name.startswith(".")]
    try:
        outcomes = migration.migrate_records(
            paths, plan_of, registry, full,
            progress=(lambda line: None) if quiet else (lambda line: typer.echo(line, err=True)))
    except (UsageError, click.exceptions.UsageError) as error:
        fail_usage(error)
    shown = [o for o in outcomes if o.result != migration.CURRENT]
    if shown:
        typer.echo(tabulate([o.row() for o in shown], ["record", "result", "detail"]))
    seen = [o.result for o in outcomes]
    typer.echo(f"{len(outcomes)} records: " + ", ".join(
        f"{seen.count(r)} {r}" for r in dict.fromkeys(seen)))
    if migration.MISMATCH in seen:
        raise typer.Exit(1)


@app.command()
def sweep(
    methods: str = typer.Option("all", help="Comma-separated method names, or 'all'."),
    tasks: str = typer.Option("all", help="Tasks with an exact hypergradient, or 'all'."),
    grid: str = typer.Option(None, help="Comma-separated values of each method's accuracy "
                                        "knob (default 1,2,4,…,128)."),
    seed: int = typer.Option(0, help="Seed fixing φ₀ and the meta-batch (as in a trial)."),
    repeats: int = typer.Option(3, help="Timed hypergradients per point (median)."),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:N."),
    out: Path = typer.Option(Path("reports"), help="Folder; files go to OUT/sweep/."),
    set_: list[str] = typer.Option([], "--set", help="Override: key=value or name.key=value."),
    plugins: list[Path] = typer.Option([], help="Extra folder of method/task plugin files."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress lines."),
) -> None:
    """Hypergradient error vs accuracy knob and vs time, per method (Grazzi et al. 2020)."""
    from benchsuite.running import registry as plugin_registry
    from benchsuite.running import sweep as accuracy_sweep

    check_folder(out / "sweep", "--out")
    try:
        if repeats < 1:
            raise UsageError(f"--repeats must be at least 1 (got {repeats})")
        if seed < 0:
            raise UsageError(f"--seed must be at least 0 (got {seed})")
        values = (accuracy_sweep.DEFAULT_GRID if grid is None
                  else accuracy_sweep.parse_grid(grid))
        registry = plugin_registry.discover(plugins)
        pairs = accuracy_sweep.plan_sweep(registry, methods=methods, tasks=tasks, seed=seed,
                                          device=device, set_items=set_)
    except UsageError as error:
        fail_usage(error)
    try:
        written = accuracy_sweep.run_sweep(
            registry, pairs, values, repeats, out / "sweep",
            progress=(lambda line: None) if quiet else (lambda line: typer.echo(line, err=True)))
    except OSError as error:
        fail_io(error, "could not write the sweep")
    typer.echo("wrote " + ", ".join(map(str, written)))


@app.command()
def tune(
    methods: str = typer.Option(..., help="Comma-separated method names, or 'all' (every "
                                          "method that is no floor and has no paper "
                                          "protocol for the task)."),
    tasks: str = typer.Option(..., help="Comma-separated task names, or 'all'."),
    iterations: int = typer.Option(None, help="Meta-iterations per trial (default: the "
                                              "task's)."),
    meta_batch: int = typer.Option(None, help="Tasks per meta-batch (default: the task's)."),
    set_: list[str] = typer.Option([], "--set", help="Override: key=value or name.key=value "
                                                     "(the grid is centred on the result)."),
    seeds: int = typer.Option(1, help="Seeds (0 … N−1) per configuration; scores are the "
                                      "mean over seeds."),
    budget: str = typer.Option("quick", help="'paper' or 'quick', as for `run`."),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:N."),
    executor: str = typer.Option("local", help="local, ray or inline, as for `run`."),
    timeout: float = typer.Option(None, help="Wall-clock limit per trial, in seconds."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Trials side by side with --executor "
                                                     "local."),
    data_root: Path = typer.Option(None, help="Folder holding the data sets (default: "
                                             "$BENCHSUITE_DATA or ~/.cache/benchsuite/data)."),
    out: Path = typer.Option(Path("results/tune"), help="Folder for the tuning trials' "
                                                        "records (kept: a re-run resumes)."),
    protocols_dir: Path = typer.Option(None, help="Protocol folder the tuned protocols are "
                                                  "written to (tuned/<task>.toml) and read "
                                                  "from, after the package's; default: "
                                                  "$BENCHSUITE_PROTOCOLS or "
                                                  "~/.config/benchsuite/protocols."),
    plugins: list[Path] = typer.Option([], help="Extra folder of method/task plugin files."),
    dry_run: bool = typer.Option(False, help="Print the grids and run nothing."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Tune a method's step sizes on validation episodes: the best of 4 configurations per
    method × task (the same budget for every method), written as a tuned protocol."""
    from benchsuite.blocks import data
    from benchsuite.running import executors, planning, runner
    from benchsuite.running import protocols as protocol_files
    from benchsuite.running import registry as plugin_registry
    from benchsuite.running import tune as tuning
    from benchsuite.storage import reproducibility
    from benchsuite.storage.records import folder_problem

    executors.quiet_library_warnings()
    if data_root is not None:
        os.environ[data.DATA_ROOT_VARIABLE] = str(data_root.expanduser().resolve())
    root = protocols_dir if protocols_dir is not None else protocol_files.user_folder()
    command = shlex.join(["benchsuite", *sys.argv[1:]])
    try:
        for folder, option in ((root, "--protocols-dir"), (out, "--out")):
            problem = folder_problem(folder, option)
            if problem:
                raise UsageError(problem)
        if not 1 <= seeds <= planning.MAX_SEEDS:
            raise UsageError(f"--seeds must be at least 1 and at most {planning.MAX_SEEDS} "
                             f"(got {seeds})")
        trial_executor = executors.make_executor(executor, timeout=timeout, address=None,
                                                 jobs=jobs)
        registry = plugin_registry.discover(plugins)
        tune_jobs = tuning.plan_tuning(
            registry, methods=methods, tasks=tasks, seeds=seeds, budget=budget,
            device=device, options={"iterations": iterations, "meta_batch": meta_batch},
            set_items=set_, out=out,
            protocols=protocol_files.load(protocol_files.PACKAGED, root),
            device_here=executor != "ray", command=command)
    except UsageError as error:
        fail_usage(error)
    reproducibility.prepare_environment(deterministic=True)
    if dry_run:
        typer.echo(tuning.grid_table(tune_jobs, scored=False))
        typer.echo(f"{sum(len(job.trials) for job in tune_jobs)} trials "
                   f"({tuning.TUNE_BUDGET} configurations × {seeds} seed(s) per pair) -> "
                   f"{out} (dry run: nothing executed or written)")
        return
    try:
        summary = runner.execute([spec for job in tune_jobs for spec in job.trials],
                                 trial_executor, force=False, quiet=quiet)
    except OSError as error:
        fail_io(error, "could not create the results folder")
    for line in summary.kept_instead:
        typer.echo(f"note: {line}", err=True)
    if summary.interrupted:
        typer.echo(f"\nstopped by {summary.interrupted}: {len(summary.written)} records "
                   f"written to {out}, no protocol written; re-run the same command to "
                   "resume", err=True)
        raise typer.Exit(128 + signal.Signals[summary.interrupted].value)
    if report_unsaved(summary, out):
        typer.echo("error: no protocol written: re-run the same command once the records "
                   "are back in place", err=True)
        raise typer.Exit(EXIT_IO)
    if summary.unfinished:
        typer.echo(f"warning: {len(summary.unfinished)} trials did not finish (their "
                   f"configurations score as the worst):\n{summary.unfinished_table()}",
                   err=True)
    try:
        status = tuning.choose_and_write(tune_jobs, root=root, seeds=seeds, command=command,
                                         echo=typer.echo)
    except OSError as error:
        fail_io(error, "could not write the tuned protocol")
    if status:
        raise typer.Exit(status)


@app.command(name="list")
def list_plugins(
    plugins: list[Path] = typer.Option([], help="Extra plugin folders."),
    settings: str = typer.Option(None, "--settings", help="A method or task: every config "
                                 "key its trials read, with type, default, source and "
                                 "meaning."),
    wide: bool = typer.Option(False, help="Whole lines and the compatibility grid (the "
                                          "default fits 100 columns)."),
) -> None:
    """Show methods, tasks, which pairs are compatible, and the protocols."""
    from benchsuite.running import catalog
    from benchsuite.running import protocols as protocol_files

    try:
        data = catalog.catalog(plugins)
        if settings is not None:
            typer.echo(catalog.settings_table(data, settings, wide=wide))
            return
        typer.echo(catalog.render(data, protocol_files.load(), wide=wide))
    except UsageError as error:
        fail_usage(error)
