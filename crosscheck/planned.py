"""The config a trial of the suite would run under a protocol, and the task and method
built from it in float64, for the checks to compare against a source."""

from __future__ import annotations

from typing import Any

import torch

from benchsuite.running import protocols, registry
from benchsuite.running.planning import resolve_pair
from benchsuite.running.trial import set_up


def planned_config(method: str, task: str, protocol: str | None = None) -> dict[str, Any]:
    """The resolved config of seed 0 of (method, task) at the paper budget, as `benchsuite
    run` resolves it: under the named `protocol`, or the pair's own (paper, tuned) one.
    Nothing is validated against the data on disk: the checks need none."""
    found = registry.discover()
    every = protocols.load(protocols.PACKAGED)
    chosen = (every.named_protocol(protocol).for_method(method) if protocol
              else every.for_trial(method, task))
    return resolve_pair(found, method, task, seed=0, budget="paper", device="cpu",
                        protocol=chosen)


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
