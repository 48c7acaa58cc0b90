"""How the engine executes a meta-batch: in chunks of tasks whose meta-gradients are
accumulated, so that peak memory is one chunk's, not the whole batch's.

A method's `meta_gradient(task, phi, batch)` returns the mean hypergradient over the tasks
of `batch`. The engine calls it on consecutive chunks of `meta_chunk` tasks and combines
the chunks' means weighted by their sizes, which is the meta-batch mean up to the order of
the float summation: every method's meta-gradient is a mean over tasks (a method whose
update is not, like Reptile's φ − W̄, is still linear in that mean). Inside a chunk, the
config's `batching` says whether its tasks are vmapped together or looped over.

The conv models need one more fact: whether the code is running under `torch.func.vmap`
over tasks, where PyTorch's native batch norm has a wrong second derivative (tests/
test_conv4.py); `over_tasks` marks those calls with `running_tasks(TASKS_VMAPPED)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch

from benchsuite.core.structures import EpisodeBatch, MetaGradient, Params

TASKS_VMAPPED = "vmapped"
"""Tasks processed together with torch.func.vmap (functional.over_tasks, batching "vmap")."""
TASKS_LOOPED = "looped"
"""A meta-gradient taken with plain autograd over tasks looped one by one."""

_ENCLOSING: list[str] = []
"""How the computations now running are executed over tasks, outermost first. A plain
list, not a ContextVar: torch.compile traces through list mutation, and a trial runs its
meta-steps in one thread."""


@contextlib.contextmanager
def running_tasks(how: str) -> Iterator[None]:
    """Marks the computations inside as run over tasks `how` (TASKS_VMAPPED or
    TASKS_LOOPED), inside whatever encloses them."""
    _ENCLOSING.append(how)
    try:
        yield
    finally:
        _ENCLOSING.pop()


def under_task_vmap() -> bool:
    """Whether the current forward pass runs inside a vmap over tasks."""
    return TASKS_VMAPPED in _ENCLOSING


def plain_autograd() -> bool:
    """Whether inner gradients should be taken with plain autograd here: inside a looped
    meta-gradient, with gradients recorded, outside any vmap over tasks."""
    return TASKS_LOOPED in _ENCLOSING and TASKS_VMAPPED not in _ENCLOSING and (
        torch.is_grad_enabled())


def chunk_bounds(tasks: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) of consecutive chunks of `chunk` tasks; 0 means one chunk of all."""
    size = tasks if chunk <= 0 else chunk
    return [(start, min(start + size, tasks)) for start in range(0, tasks, size)]


def chunked_meta_gradient(meta_gradient: Callable[[EpisodeBatch], MetaGradient],
                          batch: EpisodeBatch, chunk: int) -> MetaGradient:
    """The meta-batch mean of `meta_gradient`, computed chunk by chunk.

    Each chunk's result is weighted by its share of the batch and added into one running
    sum, so only one chunk's graph is alive at a time. With a single chunk this is
    `meta_gradient(batch)` itself, bit for bit. The outer loss comes back as a float (a
    method may return a 0-d tensor: benchsuite.core.structures.MetaGradient)."""
    bounds = chunk_bounds(len(batch), chunk)
    if len(bounds) == 1:
        whole = meta_gradient(batch)
        return replace(whole, outer_loss=float(whole.outer_loss))
    total: Params | None = None
    outer_loss = 0.0
    extras: dict[str, float] = {}
    for start, stop in bounds:
        part = meta_gradient(batch.slice(start, stop))
        weight = (stop - start) / len(batch)
        grads = {k: g.detach() * weight for k, g in part.grads.items()}
        total = grads if total is None else {k: total[k] + grads[k] for k in total}
        outer_loss += weight * float(part.outer_loss)
        for name, value in part.extras.items():
            extras[name] = extras.get(name, 0.0) + weight * value
    assert total is not None
    return MetaGradient(grads=total, outer_loss=outer_loss, extras=extras)


def describe(config: dict[str, Any]) -> dict[str, Any]:
    """The execution path of a trial, as its record states it."""
    chunks = len(chunk_bounds(config["meta_batch"], config["meta_chunk"]))
    return {"meta_chunk": config["meta_chunk"], "chunks_per_meta_batch": chunks,
            "tasks_per_chunk": -(-config["meta_batch"] // chunks),
            "batching": config["batching"], "eval_chunk": config["eval_chunk"]}
