"""`benchsuite run` and `benchsuite migrate`: a grid of trials, and records carried over a
code change."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import typer

from benchsuite.cli.app import EXIT_IO, app, check_folder, click_errors, fail_io, fail_usage
from benchsuite.core.errors import UsageError


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
    report: Path = typer.Option(None, help="Also write the leaderboard of --out here once "
                                           "the grid has run (LEADERBOARD.md, index.html, "
                                           "figures), as `benchsuite report` does."),
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
    quiet: bool = typer.Option(False, "-q", "--quiet",
                               help="No progress display and no results table."),
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
    if o["report"] is not None:
        check_folder(Path(o["report"]), "--report")
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
    # once the run is sure to start (a forkserver started by a run that then failed its
    # planning would keep that run's environment for later runs of the same process)
    trial_executor.prepare()
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
    _print_results(specs, registry, o["out"], quiet=o["quiet"])
    if o["report"] is not None:
        from benchsuite.cli.records import write_leaderboard

        write_leaderboard(o["out"], Path(o["report"]), registry, None, said="leaderboard:")
    else:
        reports = Path("reports") / Path(o["out"]).name
        typer.echo(f"leaderboard: benchsuite report {o['out']} --out {reports} (writes "
                   f"{reports / 'LEADERBOARD.md'} and {reports / 'index.html'})")
    if unsaved:
        raise typer.Exit(EXIT_IO)
    if summary.unfinished:
        typer.echo(f"{len(summary.unfinished)} trials did not finish:\n"
                   f"{summary.unfinished_table()}", err=True)
        raise typer.Exit(1)


def _print_results(specs, registry, out: Path, quiet: bool) -> None:
    """The grid's results table (benchsuite.reporting.summary) and how to get its report."""
    from benchsuite.reporting.summary import results_table
    from benchsuite.storage.records import read_record

    records = []
    for spec in specs:
        try:
            records.append(read_record(spec.path))
        except ValueError:  # not stored (reported above) or not readable: not in the table
            continue
    table = results_table(records, registry)
    if table and not quiet:
        typer.echo("\n" + table + "\n")


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
def migrate(
    results: Path = typer.Argument(..., help="Folder of trial records."),
    full: bool = typer.Option(False, help="Re-run whole trials and compare every number a "
                              "report prints (default: up to each record's first "
                              "learning-curve point, as `verify --quick`)."),
    tasks: str = typer.Option("all", help="Only the records of these tasks "
                                          "(comma-separated), e.g. to share the work "
                                          "between processes."),
    plugins: list[Path] = typer.Option([], help="Extra plugin folders."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress lines."),
) -> None:
    """Carry records over a code change that leaves their numbers as they were.

    Each record's trial is re-planned from its stored command and re-run under the current
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

    chosen = None if tasks == "all" else set(tasks.split(","))
    paths = [p for p in results.rglob("*.json") if not p.name.startswith(".")
             and (chosen is None or p.relative_to(results).parts[0] in chosen)]
    try:
        outcomes = migration.migrate_records(
            paths, plan_of, registry, full,
            progress=(lambda line: None) if quiet else (lambda line: typer.echo(line, err=True)))
    except (UsageError, click_errors.UsageError) as error:
        fail_usage(error)
    shown = [o for o in outcomes if o.result != migration.CURRENT]
    if shown:
        typer.echo(tabulate([o.row() for o in shown], ["record", "result", "detail"]))
    seen = [o.result for o in outcomes]
    typer.echo(f"{len(outcomes)} records: " + ", ".join(
        f"{seen.count(r)} {r}" for r in dict.fromkeys(seen)))
    if migration.MISMATCH in seen:
        raise typer.Exit(1)
