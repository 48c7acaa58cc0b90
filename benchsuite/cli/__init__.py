"""Command-line interface: `benchsuite run | migrate | report | export | verify | sweep |
tune | list`. Each command parses its options and calls the module that does the work;
`app` (benchsuite.cli.app) holds what they share: one-line usage errors and exit codes."""

# the modules register their commands in this order, the order `--help` lists them
from benchsuite.cli import running, records, tools  # noqa: F401, I001
from benchsuite.cli.app import app

__all__ = ["app"]
