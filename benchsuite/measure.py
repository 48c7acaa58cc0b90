"""Honest wall-clock and memory measurement for one trial.

Time: every interval is closed by a device synchronisation, so asynchronous CUDA work is
charged to the interval that launched it.

Memory: on CUDA, the allocator's peak allocated and reserved bytes since the trial started
(`reset_peak_memory_stats`). On CPU, the kernel's resident-set high-water mark (VmHWM) is
reset when the trial starts (writing 5 to /proc/self/clear_refs, Linux >= 4.0), and
`peak_bytes` is the high-water mark at the end of the trial minus the resident set at its
start (after the task and its data are built): meta-steps, optimiser state and
evaluations. The allocator keeps freed memory, so the figure must count from before the
first meta-iteration: a baseline taken later would already hold that iteration's peak.
It includes a few MB of code and buffers PyTorch loads the first time a transform runs,
the same for every method. The local executor runs each trial in a fresh process, so no
earlier trial is resident.
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
    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.peak_was_reset = reset_peak_rss()
        self.baseline_rss = current_rss_bytes()

    def result(self) -> dict:
        peak_rss = peak_rss_bytes()
        figures = {"peak_rss_bytes": peak_rss, "baseline_rss_bytes": self.baseline_rss}
        if self.device.type == "cuda":
            figures.update(
                peak_bytes=torch.cuda.max_memory_allocated(self.device),
                peak_reserved_bytes=torch.cuda.max_memory_reserved(self.device),
                method="cuda max_memory_allocated since trial start",
            )
        else:
            figures.update(
                peak_bytes=max(0, peak_rss - self.baseline_rss),
                method=("peak RSS (VmHWM reset at trial start) above the RSS at trial start"
                        if self.peak_was_reset else
                        "process peak RSS above the RSS at trial start (upper bound: the "
                        "high-water mark could not be reset)"),
            )
        return figures
