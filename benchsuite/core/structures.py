"""The values the engine, tasks and methods pass to each other: parameters as dicts of
tensors (with the method-owned groups of φ), episodes stacked into meta-batches, and what
one meta-step returns. Plugins import them from benchsuite.core.contract; they live here, below
every other engine module, so that the contract can build on the inner-loop code
(benchsuite.core.functional) that uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

Params = dict[str, torch.Tensor]
LayerTransforms = Sequence[Callable[[torch.Tensor], torch.Tensor]]
"""One function per layer of a task's model, applied to that layer's affine output (batch
first, the layer's output units — features or channels — on dimension 1) before its
nonlinearity and normalisation: MT-net's T and WarpGrad's warp layers."""

OWNED_SEPARATOR = ":"
"""A method's own meta-parameters (Meta-SGD's step sizes, MT-net's transforms, ...) sit in
φ beside the task's under keys "group:name"; a task's keys never contain the separator."""


def owned(group: str, params: Params) -> Params:
    """`params` as the method-owned group `group` of φ."""
    return {f"{group}{OWNED_SEPARATOR}{k}": v for k, v in params.items()}


def owned_part(phi: Params, group: str) -> Params:
    """The method-owned group `group` of φ, keyed by name."""
    prefix = f"{group}{OWNED_SEPARATOR}"
    return {k[len(prefix):]: v for k, v in phi.items() if k.startswith(prefix)}


def task_part(phi: Params) -> Params:
    """The task's own meta-parameters in φ, without any method-owned group."""
    return {k: v for k, v in phi.items() if OWNED_SEPARATOR not in k}


@dataclass
class EpisodeBatch:
    """Episodes stacked along a leading task dimension: `support_x[t]` is task t's support."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def to(self, device: torch.device | str) -> EpisodeBatch:
        return EpisodeBatch(*(t.to(device) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.support_x, self.support_y, self.query_x, self.query_y)

    def slice(self, start: int, stop: int) -> EpisodeBatch:
        return EpisodeBatch(*(t[start:stop] for t in self.tensors()))


@dataclass
class MetaGradient:
    """What one meta-step returns: the hypergradient for every meta-parameter, the mean
    outer loss of the meta-batch it was computed on, and method-specific scalars.

    `outer_loss` may be a Python float or a 0-d tensor. A tensor keeps a meta-step free of
    host reads: under `torch.compile` a `float()` inside the step splits its graph in two
    (docs/performance.md, "The compiled path"). The engine reads it as a float once the
    step has returned (benchsuite.core.execution.chunked_meta_gradient)."""

    grads: Params
    outer_loss: float | torch.Tensor
    extras: dict[str, float] = field(default_factory=dict)
