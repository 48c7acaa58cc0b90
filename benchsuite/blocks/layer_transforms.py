"""Methods that insert a meta-learned map after each layer of a task's model.

MT-net's T_l (Lee & Choi 2018) and WarpGrad's warp layers Ω_l (Flennerhag et al. 2020)
are the same object: a square matrix over layer l's output units, applied to its affine
output before the nonlinearity (a 1×1 convolution for a conv layer), shared by all tasks,
meta-learned and never adapted, initialised to the identity. `LayerTransformMethod` holds
them in φ as one method-owned group, runs the task's model through them, and scores
adapted θ through them; MT-net and WarpGrad differ in their inner step and meta-objective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F

from benchsuite.core.contract import (
    META_INIT,
    LayerTransforms,
    Method,
    Params,
    Task,
    owned,
    owned_part,
    task_part,
)
from benchsuite.core.functional import gradient_descent


class WithTransforms:
    """A task whose model runs with fixed per-layer transforms (Task.layer_transforms):
    its losses and score under the plain task interface, so the inner loops of
    benchsuite.core.functional apply."""

    def __init__(self, task: Task, transforms: LayerTransforms):
        self.task = task
        self.transforms = transforms

    def inner_loss(self, theta, phi, x, y):
        return self.task.inner_loss(theta, phi, x, y, transforms=self.transforms)

    def outer_loss(self, theta, phi, x, y):
        return self.task.outer_loss(theta, phi, x, y, transforms=self.transforms)

    def score(self, theta, phi, x, y):
        return self.task.score(theta, phi, x, y, transforms=self.transforms)


def channel_mixing(matrix: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """h ↦ M h over the output units on dimension 1: a linear map of a layer's features,
    or a 1×1 convolution of its channels."""
    return lambda h: F.linear(h.movedim(1, -1), matrix).movedim(-1, 1)


def per_layer(task: Task, theta: Params, make: Callable[[int], torch.Tensor]) -> Params:
    """`make(width)` for each layer of θ's model (width: its output units), keyed by the
    layer's index, on θ's device and in its dtype."""
    reference = next(iter(theta.values()))
    return {str(layer): make(theta[keys[0]].shape[0]).to(reference)
            for layer, keys in enumerate(task.layers(theta))}


class LayerTransformMethod(Method):
    """A meta-initialisation method with an identity-initialised linear map after every
    layer of the task's model, stored in φ under the owned group `transform_group`. Its
    default `adapt` is plain gradient descent on θ through the transformed model."""

    supports = frozenset({META_INIT})
    transform_group: ClassVar[str]
    """The name of the maps' group in φ ("group:layer" keys)."""

    @classmethod
    def incompatibility(cls, task: type[Task]) -> str | None:
        reason = super().incompatibility(task)
        if reason is None and not task.layer_transforms:
            reason = (f"{cls.name} inserts per-layer transforms into the model, and "
                      f"{task.name}'s model takes none (Task.layer_transforms)")
        return reason

    def init_meta_params(self, task: Task, generator: torch.Generator) -> Params:
        phi = task.init_meta_params(generator)
        return {**phi, **owned(self.transform_group,
                               per_layer(task, task.initial_theta(phi), torch.eye))}

    def transformed(self, task: Task, phi: Params) -> WithTransforms:
        """The task's model with φ's per-layer maps in place."""
        maps = owned_part(phi, self.transform_group)
        return WithTransforms(task, [channel_mixing(maps[str(layer)])
                                     for layer in range(len(maps))])

    def adapt(self, task, phi, support_x, support_y, steps):
        task_phi = task_part(phi)
        return gradient_descent(self.transformed(task, phi), task.initial_theta(task_phi),
                                task_phi, support_x, support_y, steps, self.config["inner_lr"])

    def score(self, task, phi, theta, x, y):
        return self.transformed(task, phi).score(theta, task_part(phi), x, y)
