"""How the local executor starts a trial's worker process without paying a Python start
and a PyTorch import per trial.

Every trial still runs in a process of its own (a crash, a leak or an exhausted memory
stays there), but that process is forked from multiprocessing's *forkserver*: a server
process, started once per runner, that has imported PyTorch, `torch._dynamo` and the trial
loop, and parsed the engine's sources for the code-identity check (`PRELOAD`). A fork of
it starts in a few tens of milliseconds where a spawned interpreter took seconds to
import the same modules. The forkserver never runs PyTorch
work itself (no thread pool, no CUDA context), so forking it is safe. The plugins are not
preloaded: a worker loads its method and task files itself, so it always runs the code
the trial was planned with (benchsuite.running.executors checks that).

A forked worker inherits the forkserver's environment, which is the runner's when the
forkserver started; `in_runner_environment` gives it the runner's environment as it is
when the trial starts, as a spawned process would have (a data root set since, say).
A forked worker's parent is the forkserver, not the runner, and the forkserver outlives a
runner killed with SIGKILL while any worker it forked lives (every worker holds the pipe
whose closing ends it): so a worker's orphan check (benchsuite.running.executors) watches
the runner's process itself. Where the platform has no forkserver, workers are spawned.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from typing import Any

PRELOAD = ("torch", "torch._dynamo", "torch.func", "benchsuite.running.worker_preload")
"""Modules the forkserver imports once for every worker (worker_preload imports the
trial loop, and through it the engine, and parses the engine's sources)."""


def worker_context() -> BaseContext:
    """The multiprocessing context that starts trial workers: the forkserver with
    `PRELOAD` imported, else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


@contextmanager
def main_module_hidden() -> Iterator[None]:
    """Start processes inside this so that they do not import the runner's `__main__`.
    multiprocessing has every forkserver or spawned child import the parent's main module
    (by name for `python -m pkg.mod`, else by its file) so that functions defined there can
    be targets. A trial's target is a function of benchsuite, so a worker needs none of it,
    and importing it costs the worker whatever that module imports: a second or more for a
    benchmark script or a user's own driver script, on every trial."""
    main = sys.modules["__main__"]
    hidden: dict[str, Any] = {name: main.__dict__[name]
                              for name in ("__spec__", "__file__") if name in main.__dict__}
    main.__dict__.update(__spec__=None)
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(hidden)


def start_early(context: BaseContext) -> None:
    """Start `context`'s forkserver now, so that its imports overlap whatever the runner
    does before its first trial (loading the plugins, planning): otherwise the first
    trial's start waits for them, ~3 s. Without a forkserver, nothing to start."""
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def in_runner_environment(environment: dict[str, str], target: Callable[..., Any],
                          *args: Any) -> None:
    """Run `target(*args)` in a worker with the environment variables `environment`
    (the runner's when it started the trial)."""
    os.environ.clear()
    os.environ.update(environment)
    target(*args)
