"""Errors that are part of the command-line interface."""


class UsageError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2,
    before anything is written."""
