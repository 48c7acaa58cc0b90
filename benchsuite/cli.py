"""Command-line interface: `benchsuite run | report | list`.

Usage errors print one line (`error: …`) and exit 2 before anything is written. `run`
exits 0 when every trial finished (or was n/a or already done), 1 when some failed.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from benchsuite.errors import UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmark hypergradient (bilevel) meta-learning methods.")


def fail_usage(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


@app.command()
def run(
    methods: str = typer.Option("all", help="Comma-separated method names, or 'all'."),
    tasks: str = typer.Option("all", help="Comma-separated task names, or 'all'."),
    seeds: int = typer.Option(1, help="Number of seeds (0 … N−1) per method × task."),
    iterations: int = typer.Option(None, help="Meta-iterations (default: the task's)."),
    meta_batch: int = typer.Option(None, help="Tasks per meta-batch (default: the task's)."),
    budget: str = typer.Option("quick", help="'paper' for the paper's iteration count, "
                                             "'quick' for a CPU-sized run."),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:N."),
    out: Path = typer.Option(Path("results"), help="Folder for trial records."),
    set_: list[str] = typer.Option([], "--set", help="Override: key=value or name.key=value."),
    plugins: list[Path] = typer.Option([], help="Extra folder of method/task plugin files."),
    executor: str = typer.Option("local", help="local (fresh process per trial) or inline."),
    timeout: float = typer.Option(None, help="Wall-clock limit per trial, in seconds."),
    force: bool = typer.Option(False, help="Re-run trials whose record already exists."),
    dry_run: bool = typer.Option(False, help="Print the trial grid and run nothing."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    data_root: Path = typer.Option(None, help="Folder holding the data sets (default: "
                                             "$BENCHSUITE_DATA or ~/.cache/benchsuite/data)."),
    download: bool = typer.Option(False, help="Fetch missing data sets into the data root."),
) -> None:
    """Run methods × tasks × seeds and write one record per trial."""
    from benchsuite import data, runner
    from benchsuite import registry as plugin_registry

    # Through the environment, not the config: where data lives is not part of a trial's
    # identity, and worker processes inherit it.
    if data_root is not None:
        os.environ[data.DATA_ROOT_VARIABLE] = str(data_root.expanduser().resolve())
    if download:
        os.environ[data.DOWNLOAD_VARIABLE] = "1"
    try:
        if executor not in runner.EXECUTORS:
            raise UsageError(f"unknown --executor {executor!r}; valid: "
                             f"{', '.join(runner.EXECUTORS)}")
        if timeout is not None and timeout <= 0:
            raise UsageError(f"--timeout must be positive (got {timeout:g})")
        registry = plugin_registry.discover(plugins)
        specs = runner.plan(registry, methods=methods, tasks=tasks, seeds=seeds,
                            budget=budget, device=device,
                            options={"iterations": iterations, "meta_batch": meta_batch},
                            set_items=set_, out=out)
    except UsageError as error:
        fail_usage(error)
    if dry_run:
        for spec in specs:
            state = f"n/a: {spec.incompatible}" if spec.incompatible else (
                f"{spec.config['iterations']} iterations, meta-batch {spec.config['meta_batch']}")
            typer.echo(f"{spec.label()}  [{state}]  -> {spec.path}")
        typer.echo(f"{len(specs)} trials (dry run: nothing executed)")
        return
    try:
        summary = runner.execute(specs, executor=executor, force=force, quiet=quiet,
                                 timeout=timeout)
    except KeyboardInterrupt:
        typer.echo("\ninterrupted: every record written so far is complete; re-run the same "
                   "command to finish the remaining trials", err=True)
        raise typer.Exit(130) from None
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(summary.statuses.items()))
    typer.echo(f"{len(specs)} trials: {counts}; records in {out}")
    if summary.failed:
        typer.echo("not finished:\n  " + "\n  ".join(summary.failed), err=True)
        raise typer.Exit(1)


@app.command()
def report(
    results: Path = typer.Argument(Path("results"), help="Folder of trial records."),
    out: Path = typer.Option(Path("reports"), help="Folder for LEADERBOARD.md and figures."),
    plugins: list[Path] = typer.Option([], help="Extra plugin folders (to mark stale rows)."),
) -> None:
    """Render LEADERBOARD.md and figures from stored trial records."""
    from benchsuite import registry as plugin_registry
    from benchsuite.report import write_report

    if not results.is_dir():
        fail_usage(UsageError(f"results folder {str(results)!r} does not exist; run "
                              "`benchsuite run` first or pass the folder holding records"))
    try:
        registry = plugin_registry.discover(plugins)
    except UsageError as error:
        fail_usage(error)
    path, warnings = write_report(results, out, registry)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {path}")


@app.command(name="list")
def list_plugins(
    plugins: list[Path] = typer.Option([], help="Extra plugin folders."),
) -> None:
    """Show methods, tasks and which pairs are compatible."""
    from tabulate import tabulate

    from benchsuite import registry as plugin_registry

    try:
        registry = plugin_registry.discover(plugins)
    except UsageError as error:
        fail_usage(error)
    method_names = registry.canonical_methods()
    rows = [[name, ", ".join(p.cls.aliases) or "", ", ".join(sorted(p.cls.supports)),
             p.cls.paper] for name, p in ((n, registry.methods[n]) for n in method_names)]
    typer.echo("Methods\n" + tabulate(rows, ["method", "aliases", "problem kinds", "paper"]))
    rows = []
    for name in registry.canonical_tasks():
        cls = registry.tasks[name].cls
        d = cls.defaults
        protocol = (f"{d['inner_steps']} inner steps, α={d['inner_lr']}, meta-batch "
                    f"{d['meta_batch']}, {d['iterations']} iterations")
        for key in ("ways", "shots"):
            if key in d:
                protocol = f"{key} {d[key]}, " + protocol
        rows.append([name, cls.kind, f"{cls.metric} ({'↑' if cls.higher_is_better else '↓'})",
                     protocol])
    typer.echo("\nTasks\n" + tabulate(rows, ["task", "problem kind", "metric",
                                             "paper defaults"]))
    header = ["task \\ method", *method_names]
    grid = [[t, *("yes" if registry.methods[m].cls.incompatibility(registry.tasks[t].cls)
                  is None else "n/a" for m in method_names)]
            for t in registry.canonical_tasks()]
    typer.echo("\nCompatible pairs\n" + tabulate(grid, header))
    for path, error in registry.unavailable.items():
        typer.echo(f"\nunavailable plugin {path}: {error}")
