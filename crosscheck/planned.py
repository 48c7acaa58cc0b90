"""The task and method a trial of the suite builds from a protocol's config
(crosscheck.core.protocol_config), in float64, for the checks to compare against a source."""

from __future__ import annotations

from typing import Any

import torch

from benchsuite.running import registry
from benchsuite.running.trial import set_up


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
