"""Executors: where planned trials run. Each one takes trial specs and yields
`(spec, record)` as trials end, a record for every spec and any status; the runner files
them. None of them writes to the results folder.

  inline  in this process, one after the other (for debugging: no isolation, no limit).
  local   one fresh process per trial (forked from a forkserver that has PyTorch and the
          engine imported, benchsuite.running.workers), with a wall-clock limit (the default);
          `jobs` trials side by side (`--jobs N`, default 1), each worker with a torch
          thread budget of its own: OMP_NUM_THREADS when set, else the usable cores
          divided among the jobs (PyTorch's default with one job).
  ray     every trial a Ray task (one GPU when the trial's device is CUDA, one CPU
          otherwise) that runs it on its node exactly as `local` does; records travel
          back to the driver, which writes them. A task whose worker or node is lost is
          retried by Ray, then recorded as failed. Ray is imported only when chosen
          (benchsuite.running.ray_executor).

Warnings a user cannot act on (third-party deprecation notices raised inside workers) are
filtered where the worker starts (`quiet_library_warnings`).

A worker process ignores the terminal's Ctrl-C and SIGTERM (its runner decides, and kills
it): they are blocked while it starts and ignored once it runs. It exits by itself when
its parent dies, so killing a runner with SIGKILL leaves no trial running on unnoticed.
A plugin that calls `sys.exit` inside a trial fails that trial (it does not end the run).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import wait as wait_for_any
from pathlib import Path
from typing import TYPE_CHECKING

from benchsuite.core.errors import UsageError
from benchsuite.running import workers
from benchsuite.running.registry import Registry, changed_code, load_plugin_file
from benchsuite.running.trial import Diverged, Event, Observer, run_trial
from benchsuite.storage.records import (
    DIVERGED,
    FAILED,
    FINISHED,
    OOM,
    TIMEOUT,
    new_record,
    provenance,
)

if TYPE_CHECKING:
    from benchsuite.running.planning import TrialSpec

EXECUTORS = ("local", "inline", "ray")
ORPHAN_POLL_S = 0.5
RELAY_EVERY_S = 0.25  # a worker sends its training events at most this often
STARTUP_LIMIT_S = 120.0  # for a worker to import PyTorch and the plugins, when --timeout is set
JOBS_PER_CORE = 4  # more --jobs than this many per core is a typo, not a plan
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a longer --timeout is a typo (and overflows poll's limit)
# (message regex, category, module regex): third-party notices a benchsuite user cannot act on
LIBRARY_WARNINGS = (
    # learn2learn 0.2 decorates functions with torch.jit.script, deprecated in PyTorch 2.x
    (r"`torch\.jit\.script` is deprecated", FutureWarning, r"(torch|learn2learn)(\.|$)"),
    (r"`torch\.jit\.script_method` is deprecated", FutureWarning, r"(torch|learn2learn)(\.|$)"),
)


def quiet_library_warnings() -> None:
    """Hide the LIBRARY_WARNINGS (each by message, category and module, nothing broader)."""
    for message, category, module in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


# -- one trial, in this process --------------------------------------------------------------
def trial_outcome(spec: TrialSpec, observe: Observer | None = None) -> dict:
    """Run the trial in this process and return its full record (any status); `observe`
    gets its training events (benchsuite.running.trial.Event)."""
    import torch

    started_at = _now()
    registry = Registry()
    load_plugin_file(Path(spec.method_path), registry)
    load_plugin_file(Path(spec.task_path), registry)
    problem = "; ".join(registry.unavailable.values()) or _changed_since_planning(spec, registry)
    if problem:
        return new_record(spec, FAILED, problem)
    record = new_record(spec, FINISHED)
    try:
        measured = run_trial(registry.method(spec.method).cls, registry.task(spec.task).cls,
                             spec.config, observe=observe)
        measured.pop("device")
        record.update(measured)
    except Diverged as error:
        record.update(status=DIVERGED, error=str(error))
    except (torch.OutOfMemoryError, MemoryError) as error:
        record.update(status=OOM, error=_first_line(error))
    except Exception as error:  # a plugin's failure is a trial's status, not a crash
        status = OOM if _is_allocation_failure(error) else FAILED
        record.update(status=status, error=f"{type(error).__name__}: {_first_line(error)}",
                      traceback=traceback.format_exc(limit=8))
    except SystemExit as error:  # sys.exit in a plugin ends its trial, never the run
        record.update(status=FAILED, error=f"the trial called sys.exit({error.code!r})",
                      traceback=traceback.format_exc(limit=8))
    record["provenance"] = {**provenance(torch.device(spec.config["device"])),
                            "command": spec.command, "started_at": started_at,
                            "ended_at": _now()}
    return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _changed_since_planning(spec: TrialSpec, registry: Registry) -> str | None:
    """A plugin edited between planning and running (or different on this node) would
    file new code's results under the old code's identity."""
    method, task = registry.methods.get(spec.method), registry.tasks.get(spec.task)
    changed = changed_code(spec.code, method, task) if method and task else ["plugin"]
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
class IsolatedTrial:
    """A trial running in a fresh worker process (benchsuite.running.workers), advanced
    without blocking so one runner can hold several. Its wall-clock limit starts once the
    worker has started (a spawned worker imports PyTorch first: slow on a loaded machine,
    and not the trial's doing; that gets STARTUP_LIMIT_S). A worker that
    dies or overruns is killed and recorded with the reason. `threads`: the worker's torch
    thread count (None: PyTorch's default); `jobs`: how many trials run side by side, for
    the record's provenance."""

    def __init__(self, spec: TrialSpec, timeout: float | None, threads: int | None = None,
                 jobs: int = 1):
        self.spec, self.timeout = spec, timeout
        context = workers.worker_context()
        self.receiver, sender = context.Pipe(duplex=False)
        self.process = context.Process(  # type: ignore[attr-defined]
            target=workers.in_runner_environment, daemon=True,
            args=(dict(os.environ), _worker, spec, sender, os.getpid(), threads, jobs))
        self.created = self.started = time.monotonic()  # started: the current stage
        self.stage = "while starting"
        self.events: list[Event] = []  # received, not yet taken (take_events)
        self.limit = None if timeout is None else max(timeout, STARTUP_LIMIT_S)
        try:
            # the worker inherits the mask: stopping is our job
            with _signals_blocked(), workers.main_module_hidden():
                self.process.start()
        except BaseException:
            self.receiver.close()
            raise
        finally:
            sender.close()

    @property
    def deadline(self) -> float | None:
        return None if self.limit is None else self.started + self.limit

    def remaining(self) -> float | None:
        """Seconds until the current stage overruns (None: no limit)."""
        # with a limit, the deadline is a float
        return None if self.limit is None else max(
            0.0, self.deadline - time.monotonic())  # type: ignore[operator]

    def advance(self) -> dict | None:
        """The trial's record once it has ended (reported, died or overran), else None."""
        while self.receiver.poll():
            try:
                message = self.receiver.recv()
            except EOFError:  # the worker died without sending its record
                return self._unfinished(*_death_cause(self.process))
            if isinstance(message, _Events):
                self.events.extend(message.events)
                continue
            if not self.stage:
                return message
            # "started": the trial's own limit starts now
            self.stage, self.started, self.limit = "", time.monotonic(), self.timeout
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return self._unfinished(TIMEOUT, f"exceeded the {self.limit:g} s time limit "
                                             f"{self.stage}".strip())
        return None

    def take_events(self) -> list[Event]:
        """The training events received since the last call."""
        events, self.events = self.events, []
        return events

    def _unfinished(self, status: str, error: str) -> dict:
        record = new_record(self.spec, status, error)
        record["timing"] = {"total_s": time.monotonic() - self.created}
        return record

    def close(self) -> None:
        """Kill the worker if it still runs and release the pipe."""
        if self.process.is_alive():
            self.process.kill()
        if self.process.pid is not None:
            self.process.join()
        self.receiver.close()


def run_isolated(spec: TrialSpec, timeout: float | None, threads: int | None = None,
                 jobs: int = 1) -> dict:
    """Run one trial in a fresh spawned process (IsolatedTrial) and return its record."""
    trial = IsolatedTrial(spec, timeout, threads, jobs)
    try:
        while (record := trial.advance()) is None:
            trial.take_events()  # no one watches this trial
            trial.receiver.poll(trial.remaining())
        return record
    finally:
        trial.close()


def _worker(spec: TrialSpec, connection, parent_pid: int, threads: int | None = None,
            jobs: int = 1) -> None:
    for stopping in (signal.SIGINT, signal.SIGTERM):  # the runner stops workers
        signal.signal(stopping, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    quiet_library_warnings()
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    connection.send("started")
    relay = _Relay(connection)
    record = trial_outcome(spec, observe=relay)
    record["provenance"]["jobs"] = jobs
    relay.flush()
    connection.send(record)
    connection.close()


@dataclass(frozen=True)
class _Events:
    """A worker's message: training events of its trial, in order."""

    events: list[Event]


class _Relay:
    """A worker's observer: sends its trial's events to the runner in batches (a message
    per event would cost a millisecond meta-step a measurable share of its time), a
    learning-curve point at once."""

    def __init__(self, connection):
        self.connection, self.batch, self.sent = connection, [], time.monotonic()

    def __call__(self, event: Event) -> None:
        self.batch.append(event)
        if event.kind == "curve" or time.monotonic() - self.sent >= RELAY_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.connection.send(_Events(self.batch))
            self.batch = []
        self.sent = time.monotonic()


def thread_budget(jobs: int) -> int | None:
    """Torch threads per worker when `jobs` trials run side by side: OMP_NUM_THREADS when
    set (PyTorch reads it itself), else the cores this process may use divided among the
    jobs; None (PyTorch's default) for one job."""
    if os.environ.get("OMP_NUM_THREADS") or jobs == 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(1, cores // jobs)


def _exit_when_orphaned(parent_pid: int) -> None:
    # the runner itself, not this process's parent: a forked worker's parent is the
    # forkserver, which the workers keep alive (benchsuite.running.workers)
    while _running(parent_pid):
        time.sleep(ORPHAN_POLL_S)
    os._exit(1)


def _running(pid: int) -> bool:
    """Whether process `pid` exists and has not ended (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


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
        return OOM, ("worker killed by SIGKILL, most likely by the out-of-memory killer "
                       "(the host ran out of memory)")
    if code is not None and code < 0:
        return FAILED, f"worker died from {signal.Signals(-code).name}"
    return FAILED, f"worker exited with code {code} before reporting a result"


# -- executors -------------------------------------------------------------------------------
class Executor:
    """Used as `with executor:` (connect, start workers) around `executor.outcomes(specs)`,
    which yields `(spec, record)` for every spec, in the order trials end.
    `watch(running=…, events=…)`: `running(specs)` is called with the specs running
    whenever that set changes, `events(spec, events)` with a running trial's training
    events as they arrive (executors that can see them: local and inline)."""

    _on_running: Callable[[list[TrialSpec]], None] | None = None
    _on_events: Callable[[TrialSpec, list[Event]], None] | None = None

    def watch(self, running: Callable[[list[TrialSpec]], None] | None = None,
              events: Callable[[TrialSpec, list[Event]], None] | None = None) -> None:
        self._on_running, self._on_events = running, events

    def running_changed(self, specs: list[TrialSpec]) -> None:
        if self._on_running is not None:
            self._on_running(specs)

    def events_arrived(self, spec: TrialSpec, events: list[Event]) -> None:
        if self._on_events is not None:
            self._on_events(spec, events)

    def prepare(self) -> None:
        """Start what the trials will need, once a run is decided and before it is planned,
        so that it overlaps the planning (default: nothing)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        raise NotImplementedError


class InlineExecutor(Executor):
    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        for spec in specs:
            self.running_changed([spec])
            yield spec, trial_outcome(spec, observe=functools.partial(self._one_event, spec))
            self.running_changed([])

    def _one_event(self, spec: TrialSpec, event: Event) -> None:
        self.events_arrived(spec, [event])


class LocalExecutor(Executor):
    """Up to `jobs` trials at once, each in a fresh worker process (IsolatedTrial) with its
    thread budget (thread_budget). A trial that fails, dies or overruns is recorded and
    its slot goes to the next one; stopping (an exception here, GeneratorExit included)
    kills every running worker."""

    def __init__(self, timeout: float | None, jobs: int = 1):
        self.timeout = timeout
        self.jobs = jobs
        self.threads = thread_budget(jobs)

    def prepare(self) -> None:
        with _signals_blocked():  # the forkserver's workers inherit its mask (IsolatedTrial)
            workers.start_early(workers.worker_context())

    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        running: list[IsolatedTrial]
        waiting, running = deque(specs), []
        try:
            while waiting or running:
                while waiting and len(running) < self.jobs:
                    running.append(IsolatedTrial(waiting.popleft(), self.timeout,
                                                 self.threads, self.jobs))
                    self._changed(running)
                ended = [(trial, record) for trial in running
                         if (record := trial.advance()) is not None]
                for trial in running:
                    if events := trial.take_events():
                        self.events_arrived(trial.spec, events)
                if not ended:
                    limits = [r for r in (t.remaining() for t in running) if r is not None]
                    wait_for_any([t.receiver for t in running],
                                 timeout=min(limits) if limits else None)
                    continue
                for trial, _ in ended:
                    running.remove(trial)
                    trial.close()
                while waiting and len(running) < self.jobs:  # refill before filing
                    running.append(IsolatedTrial(waiting.popleft(), self.timeout,
                                                 self.threads, self.jobs))
                self._changed(running)
                for trial, record in ended:
                    yield trial.spec, record
        finally:
            for trial in running:
                trial.close()

    def _changed(self, running: list[IsolatedTrial]) -> None:
        self.running_changed([trial.spec for trial in running])


def make_executor(name: str, *, timeout: float | None, address: str | None,
                  jobs: int = 1) -> Executor:
    if name not in EXECUTORS:
        raise UsageError(f"unknown --executor {name!r}; valid: {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (got {jobs})")
    most = JOBS_PER_CORE * (os.cpu_count() or 1)
    if jobs > most:
        raise UsageError(f"--jobs {jobs} is more than {JOBS_PER_CORE} per core of this "
                         f"machine ({most}): each job is a process of its own")
    if jobs > 1 and name != "local":
        raise UsageError(f"--jobs is for --executor local; {name} runs "
                         + ("trials one at a time, in this process" if name == "inline" else
                            "as many trials at once as the cluster has CPUs (one per trial)"
                            " and GPUs") + ": drop --jobs")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_S:
        raise UsageError(f"--timeout must be a positive number of seconds, at most "
                         f"{MAX_TIMEOUT_S:.0f} (7 days; got {timeout:g})")
    if address is not None and name != "ray":
        raise UsageError("--address is for --executor ray; drop it or add --executor ray")
    if name == "inline":
        if timeout is not None:
            raise UsageError("--timeout needs a worker process to stop: use --executor "
                             "local (the default) or ray")
        return InlineExecutor()
    if name == "local":
        return LocalExecutor(timeout, jobs)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed: pip install "
                         "'ray[default]' (or the project's dev extra), or use --executor "
                         "local") from None
    from benchsuite.running.ray_executor import RayExecutor, check_reachable

    if address not in (None, "auto"):
        check_reachable(address)
    return RayExecutor(timeout, address)
