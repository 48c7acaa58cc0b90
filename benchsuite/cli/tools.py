"""`benchsuite sweep`, `tune` and `list`: hypergradient error against cost, step sizes
chosen on validation episodes, and what is installed."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import typer

from benchsuite.cli.app import EXIT_IO, app, check_folder, fail_io, fail_usage
from benchsuite.cli.running import report_unsaved
from benchsuite.core.errors import UsageError


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
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress display."),
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
