"""Executors: where planned trials run. Each one takes trial specs and yields
`(spec, record)` as trials end, a record for every spec and any status; the runner files
them. None of them writes to the results folder.

  inline  in this process, one after the other (for debugging: no isolation, no limit).
  local   one fresh spawned process per trial, one at a time, with a wall-clock limit
          (the default).
  ray     every trial a Ray task (one GPU when the trial's device is CUDA, one CPU
          otherwise) that runs it on its node exactly as `local` does; records travel
          back to the driver, which writes them. A task whose worker or node is lost is
          retried by Ray, then recorded as failed. Ray is imported only when chosen.

A worker process ignores the terminal's Ctrl-C and SIGTERM (its runner decides, and kills
it), and exits by itself when its parent dies, so killing a runner with SIGKILL leaves no
trial running on unnoticed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from benchsuite.errors import UsageError
from benchsuite.records import new_record, provenance
from benchsuite.registry import Registry, load_plugin_file
from benchsuite.trial import Diverged, run_trial

if TYPE_CHECKING:
    from benchsuite.runner import TrialSpec

EXECUTORS = ("local", "inline", "ray")
RAY_RETRIES = 2
FORWARDED_PREFIX = "BENCHSUITE_"  # environment variables every Ray task gets from the driver
ORPHAN_POLL_S = 0.5
CONNECT_TIMEOUT_S = 10.0
STARTUP_LIMIT_S = 120.0  # for a worker to import PyTorch and the plugins, when --timeout is set


# -- one trial, in this process --------------------------------------------------------------
def trial_outcome(spec: TrialSpec) -> dict:
    """Run the trial in this process and return its full record (any status)."""
    import torch

    registry = Registry()
    load_plugin_file(Path(spec.method_path), registry)
    load_plugin_file(Path(spec.task_path), registry)
    problem = "; ".join(registry.unavailable.values()) or _changed_since_planning(spec, registry)
    if problem:
        return new_record(spec, "failed", problem)
    record = new_record(spec, "finished")
    try:
        measured = run_trial(registry.method(spec.method).cls, registry.task(spec.task).cls,
                             spec.config)
        measured.pop("device")
        record.update(measured)
    except Diverged as error:
        record.update(status="diverged", error=str(error))
    except (torch.OutOfMemoryError, MemoryError) as error:
        record.update(status="oom", error=_first_line(error))
    except Exception as error:  # a plugin's failure is a trial's status, not a crash
        status = "oom" if _is_allocation_failure(error) else "failed"
        record.update(status=status, error=f"{type(error).__name__}: {_first_line(error)}",
                      traceback=traceback.format_exc(limit=8))
    record["provenance"] = {**provenance(torch.device(spec.config["device"])),
                            "command": spec.command}
    return record


def _changed_since_planning(spec: TrialSpec, registry: Registry) -> str | None:
    """A plugin edited between planning and running (or different on this node) would
    file new code's results under the old code's identity."""
    method, task = registry.methods.get(spec.method), registry.tasks.get(spec.task)
    loaded = {"method": method and method.source_hash, "task": task and task.source_hash}
    changed = [role for role in loaded if loaded[role] != spec.code[role]]
    if changed:
        return (f"the {' and '.join(changed)} source changed since the run was planned "
                f"(or differs on this node); re-run the command to plan with the new code")
    return None


def _is_allocation_failure(error: Exception) -> bool:
    """PyTorch's CPU allocator reports a failed allocation as a RuntimeError."""
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- one trial, in a fresh process -----------------------------------------------------------
def run_isolated(spec: TrialSpec, timeout: float | None) -> dict:
    """Run a trial in a fresh spawned process, with a wall-clock limit that starts once the
    worker has started (imported PyTorch and the plugins: slow on a loaded machine, and not
    the trial's doing; that gets STARTUP_LIMIT_S). A worker that dies or overruns is killed
    and recorded with the reason."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_worker, args=(spec, sender, os.getpid()), daemon=True)
    started = time.monotonic()
    try:
        with _signals_blocked():  # the worker inherits the mask: stopping is our job
            process.start()
        sender.close()
        startup_limit = None if timeout is None else max(timeout, STARTUP_LIMIT_S)
        _, problem = _next_message(receiver, process, startup_limit, "while starting")
        if problem is None:
            record, problem = _next_message(receiver, process, timeout, "")
            if problem is None:
                return record
        record = new_record(spec, *problem)
        record["timing"] = {"total_s": time.monotonic() - started}
        return record
    finally:
        if process.is_alive():
            process.kill()
        if process.pid is not None:
            process.join()
        receiver.close()


def _next_message(receiver, process, timeout: float | None, stage: str):
    """The worker's next message and None, or None and (status, error) saying why none came."""
    if not receiver.poll(timeout):
        return None, ("timeout", f"exceeded the {timeout:g} s time limit {stage}".strip())
    try:
        return receiver.recv(), None
    except EOFError:  # the worker died without sending it
        return None, _death_cause(process)


def _worker(spec: TrialSpec, connection, parent_pid: int) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    connection.send("started")
    connection.send(trial_outcome(spec))
    connection.close()


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(ORPHAN_POLL_S)
    os._exit(1)


@contextmanager
def _signals_blocked():
    stopping = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _death_cause(process) -> tuple[str, str]:
    process.join(timeout=5)
    code = process.exitcode
    if code == -signal.SIGKILL:
        return "oom", ("worker killed by SIGKILL, most likely by the out-of-memory killer "
                       "(the host ran out of memory)")
    if code is not None and code < 0:
        return "failed", f"worker died from {signal.Signals(-code).name}"
    return "failed", f"worker exited with code {code} before reporting a result"


# -- executors -------------------------------------------------------------------------------
class Executor:
    """Used as `with executor:` (connect, start workers) around `executor.outcomes(specs)`,
    which yields `(spec, record)` for every spec, in the order trials end."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        raise NotImplementedError


class InlineExecutor(Executor):
    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        for spec in specs:
            yield spec, trial_outcome(spec)


class LocalExecutor(Executor):
    def __init__(self, timeout: float | None):
        self.timeout = timeout

    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        for spec in specs:
            yield spec, run_isolated(spec, self.timeout)


class RayExecutor(Executor):
    """Trials as Ray tasks. Connects to the cluster at `address` ("auto": the one this
    machine belongs to), or starts a local instance when `address` is None and none runs
    in this process yet; a local instance it started is shut down at the end."""

    def __init__(self, timeout: float | None, address: str | None,
                 max_retries: int = RAY_RETRIES):
        self.timeout = timeout
        self.address = address
        self.max_retries = max_retries
        self.started_ray = False

    def __enter__(self):
        import ray

        if not ray.is_initialized():
            options = {"address": self.address} if self.address else {
                "include_dashboard": False}
            ray.init(**options, log_to_driver=False, configure_logging=False)
            self.started_ray = True
        return self

    def __exit__(self, *exc_info) -> None:
        import ray

        if self.started_ray:
            ray.shutdown()

    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        import ray

        remote_trial = ray.remote(run_isolated)
        # Settings passed as environment variables (e.g. where the data lives) reach a
        # local worker by inheritance; a cluster's workers get them from here.
        forwarded = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIX)}
        environment = {"runtime_env": {"env_vars": forwarded}} if forwarded else {}
        running = {}
        for spec in specs:
            ref = remote_trial.options(**ray_resources(spec), **environment,
                                       max_retries=self.max_retries,
                                       retry_exceptions=False).remote(spec, self.timeout)
            running[ref] = spec
        try:
            while running:
                # short waits let this process notice Ctrl-C / SIGTERM
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    spec = running.pop(ref)
                    yield spec, self._collect(ref, spec)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def _collect(self, ref, spec: TrialSpec) -> dict:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.OutOfMemoryError as error:
            return new_record(spec, "oom", f"Ray's memory monitor killed the worker: "
                                           f"{_first_line(error)}")
        except ray.exceptions.RayTaskError as error:
            return new_record(spec, "failed", f"the trial's Ray task raised "
                                              f"{_first_line(error)}")
        except ray.exceptions.RayError as error:
            return new_record(spec, "failed", f"lost by Ray after {self.max_retries} retries: "
                                              f"{type(error).__name__}: {_first_line(error)}")


def ray_resources(spec: TrialSpec) -> dict[str, int]:
    """One GPU for a CUDA trial (Ray points CUDA_VISIBLE_DEVICES at it, so the trial's
    `cuda` is that GPU), and one CPU for every trial."""
    return {"num_cpus": 1, "num_gpus": 1 if spec.config["device"].startswith("cuda") else 0}


def make_executor(name: str, *, timeout: float | None, address: str | None) -> Executor:
    if name not in EXECUTORS:
        raise UsageError(f"unknown --executor {name!r}; valid: {', '.join(EXECUTORS)}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds (got {timeout:g})")
    if address is not None and name != "ray":
        raise UsageError("--address is for --executor ray; drop it or add --executor ray")
    if name == "inline":
        if timeout is not None:
            raise UsageError("--timeout needs a worker process to stop: use --executor "
                             "local (the default) or ray")
        return InlineExecutor()
    if name == "local":
        return LocalExecutor(timeout)
    if address not in (None, "auto"):
        check_reachable(address)
    return RayExecutor(timeout, address)


def check_reachable(address: str) -> None:
    """Fail fast on a wrong --address: Ray itself keeps retrying it for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r}: write HOST:PORT (the head node's GCS "
                         "port, 6379 by default) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise UsageError(f"--address {address!r}: no Ray head answers there ({error}); "
                         "start one with `ray start --head` or fix the address") from None
