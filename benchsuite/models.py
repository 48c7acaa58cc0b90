"""Functional networks used by the tasks: parameters in a dict, forward as a pure function.

Initialisation follows torch.nn's defaults but draws from an explicit generator, so a seed
fixes φ₀ for every method alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchsuite.contract import LayerTransforms, Params


def uniform_fan_in(shape: tuple[int, ...], fan_in: int, generator: torch.Generator,
                   dtype=torch.float32) -> torch.Tensor:
    """U(−1/√fan_in, 1/√fan_in): torch.nn.Linear / Conv2d default initialisation."""
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound


def mlp_init(sizes: list[int], generator: torch.Generator) -> Params:
    """Parameters of a fully connected net with layer widths `sizes`, named
    `layers.{i}.weight` / `layers.{i}.bias`."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"layers.{i}.weight"] = uniform_fan_in((fan_out, fan_in), fan_in, generator)
        params[f"layers.{i}.bias"] = uniform_fan_in((fan_out,), fan_in, generator)
    return params


def mlp_forward(params: Params, x: torch.Tensor,
                transforms: LayerTransforms | None = None) -> torch.Tensor:
    """ReLU MLP; the last layer is linear. With `transforms`, layer i's affine output
    passes through `transforms[i]` before the nonlinearity (see contract.Task.layers)."""
    n_layers = len(params) // 2
    for i in range(n_layers):
        x = F.linear(x, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
        if transforms is not None:
            x = transforms[i](x)
        if i < n_layers - 1:
            x = F.relu(x)
    return x


def mlp_layers(params: Params) -> list[tuple[str, ...]]:
    """The MLP's parameter keys grouped by layer, in forward order, weight first."""
    return [(f"layers.{i}.weight", f"layers.{i}.bias") for i in range(len(params) // 2)]


def mlp_head_keys(params: Params) -> tuple[str, ...]:
    last = len(params) // 2 - 1
    return (f"layers.{last}.weight", f"layers.{last}.bias")
