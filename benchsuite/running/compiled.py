"""The compiled execution path: `torch.compile` of a whole meta-step (the method's inner
loop, hypergradient and meta-batch, as `method.meta_gradient` computes them on one chunk),
chosen per trial by measurement.

The config key `compile` says which path a trial may take:

  off   the eager meta-step, always;
  on    compile after the first `EAGER_PROBE` eager steps, and keep the compiled step unless
        compiling fails or the compiled step is not faster than the eager one;
  auto  as `on`, but only when compiling can pay: the eager time the trial's remaining
        iterations would take must exceed the expected compile time
        (`EXPECTED_COMPILE_S`), else the trial stays eager.

The compile (tracing, code generation, the first compiled call) is timed apart: it is
excluded from the per-iteration times and included in the trial's total time. The
outcome — the path taken, why, the compile time and both step times — goes into the
record's `execution.compile`.

Compiled code is kept on disk in inductor's cache (`cache_dir`): later trials of the same
configuration (other seeds, each in its own worker process) reuse its generated kernels
and skip code generation; only tracing is paid again. Random draws are made by the same
generator as in eager mode (inductor's `fallback_random`), so a compiled step is the eager
one up to the order of float operations.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchsuite.core.contract import Method, Task
from benchsuite.core.execution import chunked_meta_gradient
from benchsuite.core.structures import EpisodeBatch, MetaGradient, Params

COMPILE_CHOICES = ("auto", "on", "off")
EAGER_PROBE = 4
"""Eager meta-steps before the decision; all but the first (lazy initialisation) time the
eager step."""
COMPILED_PROBE = 3
"""Compiled meta-steps timed before the compiled path is kept."""
EXPECTED_COMPILE_S = 60.0
"""The compile time `auto` expects before it has compiled: the order of a cold compile of
a sinusoid meta-step on a 2-core CPU (docs/performance.md, measured 20–100 s)."""
CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
DEFAULT_CACHE = Path("~/.cache/benchsuite/inductor")

MetaStep = Callable[[Params, EpisodeBatch], MetaGradient]


def cache_dir() -> Path:
    """Where inductor keeps compiled code: $TORCHINDUCTOR_CACHE_DIR, else (set here, for
    this process and the compile workers it starts) ~/.cache/benchsuite/inductor."""
    if CACHE_VARIABLE not in os.environ:
        os.environ[CACHE_VARIABLE] = str(DEFAULT_CACHE.expanduser())
    return Path(os.environ[CACHE_VARIABLE])


def eager_step(method: Method, task: Task) -> MetaStep:
    """The method's meta-gradient of one chunk, as it runs without compilation."""
    return lambda phi, part: method.meta_gradient(task, phi, part)


def compiled_step(method: Method, task: Task) -> MetaStep:
    """The same meta-gradient under `torch.compile` (compiled on its first call)."""
    cache_dir()

    def meta_step(phi, support_x, support_y, query_x, query_y):
        return method.meta_gradient(task, phi,
                                    EpisodeBatch(support_x, support_y, query_x, query_y))

    compiled = torch.compile(meta_step, options={"fallback_random": True})
    return lambda phi, part: compiled(phi, *part.tensors())


def pays(eager_step_s: float, remaining: int, compile_s: float) -> bool:
    """Whether compiling can pay: the eager time of the remaining steps exceeds the compile
    time (the largest saving a compiled step could give)."""
    return eager_step_s * remaining > compile_s


@dataclass
class Outcome:
    """What a trial's `execution.compile` records."""

    requested: str
    path: str = "eager"
    reason: str = ""
    compile_s: float = 0.0
    eager_step_s: float | None = None
    compiled_step_s: float | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


class MetaStepPath:
    """A trial's meta-step, eager or compiled, switching as `compile` and the measurements
    say. The trial calls `compiling(iteration)` before each step (True: time this step as
    the compile), `meta_gradient` for it, and `timed(step_times)` after it."""

    def __init__(self, method: Method, task: Task, config: dict[str, Any]):
        self.method, self.task = method, task
        self.chunk = config["meta_chunk"]
        self.iterations = config["iterations"]
        self.outcome = Outcome(requested=config["compile"])
        self.step = eager_step(method, task)
        self.decided_at: int | None = None
        self.compile_pending = False
        if self.outcome.requested == "off":
            self.outcome.reason = "compile=off"
        elif self.iterations <= EAGER_PROBE + COMPILED_PROBE:
            self.outcome.reason = (f"{self.iterations} iterations: too few to measure a "
                                   "compiled step")

    def compiling(self, iteration: int, step_times: list[float]) -> bool:
        """Whether this iteration compiles (decided once, after the eager probe)."""
        if self.outcome.reason or iteration != EAGER_PROBE + 1:
            return False
        eager_s = statistics.median(step_times[1:EAGER_PROBE])
        self.outcome.eager_step_s = eager_s
        remaining = self.iterations - EAGER_PROBE
        if self.outcome.requested == "auto" and not pays(eager_s, remaining,
                                                         EXPECTED_COMPILE_S):
            self.outcome.reason = (
                f"does not pay: {remaining} remaining steps × {eager_s:.4g} s eager = "
                f"{remaining * eager_s:.3g} s ≤ {EXPECTED_COMPILE_S:g} s expected compile")
            return False
        self.decided_at = iteration
        self.compile_pending = True
        self.step = compiled_step(self.method, self.task)
        return True

    def meta_gradient(self, phi: Params, batch: EpisodeBatch) -> MetaGradient:
        """This iteration's meta-gradient on the current path; a compile that fails falls
        back to the eager step, with the reason recorded."""
        def run() -> MetaGradient:
            return chunked_meta_gradient(lambda part: self.step(phi, part), batch, self.chunk)

        if not self.compile_pending:
            return run()
        self.compile_pending = False
        try:
            return run()
        except Exception as error:  # noqa: BLE001  (any compiler error: stay eager)
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            self.outcome.reason = f"compile failed: {type(error).__name__}: {first_line}"
            self.step = eager_step(self.method, self.task)
            return run()

    def timed(self, iteration: int, step_times: list[float]) -> None:
        """After a step: once the compiled probe is timed, keep the compiled path if it is
        faster than the eager step, else return to eager."""
        if (self.decided_at is None or self.outcome.reason
                or iteration != self.decided_at + COMPILED_PROBE):
            return
        compiled_s = statistics.median(step_times[-COMPILED_PROBE:])
        self.outcome.compiled_step_s = compiled_s
        eager_s = self.outcome.eager_step_s
        assert eager_s is not None
        if compiled_s < eager_s:
            self.outcome.path = "compiled"
            self.outcome.reason = (f"compiled step {compiled_s:.4g} s < eager "
                                   f"{eager_s:.4g} s")
        else:
            self.outcome.reason = (f"did not pay: compiled step {compiled_s:.4g} s ≥ eager "
                                   f"{eager_s:.4g} s")
            self.step = eager_step(self.method, self.task)

    def record(self, compile_s: float) -> dict[str, Any]:
        """The outcome, with the compiling step's time as the trial's clock measured it."""
        self.outcome.compile_s = compile_s
        return self.outcome.record()
