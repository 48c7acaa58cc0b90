"""Honest wall-clock and memory measurement for one trial.

Time: every interval is closed by a device synchronisation, so asynchronous CUDA work is
charged to the interval that launched it.

Memory: meta-training and evaluation (learning-curve points, the final test) are
measured apart (MemoryMeter.phase); `peak_bytes` is meta-training's, `eval_peak_bytes`
evaluation's. On CUDA: the allocator's peak allocated bytes above those allocated when the
trial started, its peak statistics reset at each switch. On CPU: the kernel's resident-set
high-water mark (VmHWM), reset when the trial starts and at each switch (writing 5 to
/proc/self/clear_refs, Linux >= 4.0), above the resident set at the trial's start (after
the task and its data are built). The allocator keeps freed memory, so the figure must
count from before the first meta-iteration: a baseline taken later would already hold that
iteration's peak; for the same reason, memory the allocator kept from one phase counts in
the next. It includes a few MB of code and buffers PyTorch loads the first time a
transform runs, the same for every method. The local executor runs each trial in a fresh
process, so no earlier trial is resident.
"""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Accumulates device-synchronised intervals under names."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals: dict[str, float] = {}

    @contextmanager
    def interval(self, name: str, record: list[float] | None = None):
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            elapsed = time.perf_counter() - start
            self.totals[name] = self.totals.get(name, 0.0) + elapsed
            if record is not None:
                record.append(elapsed)


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * resource.getpagesize()


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class MemoryMeter:
    """Peak memory of a trial's meta-training and of its evaluations, kept apart.

    The trial starts in the "train" phase; `phase("eval")` switches for a block. At every
    switch the peak so far is charged to the phase that is ending and the high-water mark
    is reset (CUDA: the allocator's peak statistics; CPU: VmHWM), so an evaluation's
    adaptation of many episodes never shows up as meta-training memory."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peaks: dict[str, int] = {}
        self.current = "train"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.peak_was_reset = reset_peak_rss()
        self.baseline_rss = current_rss_bytes()
        self.baseline_cuda = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0

    def _close_current(self) -> None:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) - self.baseline_cuda
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            peak = peak_rss_bytes() - self.baseline_rss
            reset_peak_rss()
        self.peaks[self.current] = max(self.peaks.get(self.current, 0), max(0, peak))

    @contextmanager
    def phase(self, name: str):
        synchronize(self.device)
        self._close_current()
        previous, self.current = self.current, name
        try:
            yield
        finally:
            synchronize(self.device)
            self._close_current()
            self.current = previous

    def result(self, after_final_phase: bool = False) -> dict:
        """The peaks. `after_final_phase`: the last switch ended the measured work (a final
        evaluation came last), so the resident level it left is charged to no phase."""
        if not after_final_phase:
            self._close_current()
        figures: dict[str, object] = {"peak_bytes": self.peaks.get("train", 0),
                   "eval_peak_bytes": self.peaks.get("eval", 0),
                   "peak_rss_bytes": peak_rss_bytes(), "baseline_rss_bytes": self.baseline_rss}
        if "compile" in self.peaks:  # the compiling step (benchsuite.running.compiled)
            figures["compile_peak_bytes"] = self.peaks["compile"]
        if self.device.type == "cuda":
            figures.update(
                peak_reserved_bytes=torch.cuda.max_memory_reserved(self.device),
                method="cuda max_memory_allocated above the allocation at trial start, "
                       "meta-training and evaluation apart")
        else:
            figures["method"] = (
                "peak RSS (VmHWM reset at trial start and at each switch between "
                "meta-training and evaluation) above the RSS at trial start; memory the "
                "allocator kept from the other phase counts" if self.peak_was_reset else
                "process peak RSS above the RSS at trial start (upper bound, both phases: "
                "the high-water mark could not be reset)")
        return figures
