"""The config a trial of the suite would run under a protocol, and the task and method
built from it in float64, for the checks to compare against a source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchsuite.running import planning, protocols, registry
from benchsuite.running.trial import set_up


def planned_config(method: str, task: str, protocol: str | None = None,
                   set_items: tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved config of seed 0 of (method, task) as `benchsuite run` plans it: under
    the named `protocol`, or the pair's own (paper, tuned) protocol."""
    found = registry.discover()
    specs = planning.plan(found, methods=method, tasks=task, seeds=1, budget="paper",
                          device="cpu", options={}, set_items=list(set_items),
                          out=Path("/nonexistent-crosscheck"), protocol=protocol,
                          protocols=protocols.load(protocols.ROOT))
    return dict(specs[0].config)


def built_in_float64(method: str, task: str, config: dict[str, Any], seed: int = 0):
    """The task, the method and φ₀ (drawn as a trial of `seed` draws it) in float64."""
    found = registry.discover()
    built = set_up(found.method(method).cls, found.task(task).cls, config,
                   init=torch.Generator().manual_seed(seed))
    phi = {k: v.double() for k, v in built.phi.items()}
    return built.task, built.method, phi


def in_float64(batch):
    """An EpisodeBatch with its floating-point tensors in float64."""
    return type(batch)(*(t.double() if t.is_floating_point() else t for t in batch.tensors()))
