"""What every command of the command line shares: the Typer application, one-line usage
errors and exit codes.

Usage errors — ours and click's own (an unknown option, a value of the wrong type) — print
one line (`error: …`) and exit 2 before anything is written. `run` exits 0 when every
trial of the grid finished (or is n/a), 1 when some did not (with a table of them), 74
when a record or a report could not be written where asked (one line says where it is
instead, and what to do), 130 / 143 when stopped by SIGINT / SIGTERM (after saying what
was saved).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

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
