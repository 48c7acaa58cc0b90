"""Functional networks used by the tasks: parameters in a dict, forward as a pure function.

Initialisation follows torch.nn's defaults but draws from an explicit generator, so a seed
fixes φ₀ for every method alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchsuite.core.contract import LayerTransforms, Params
from benchsuite.core.execution import under_task_vmap


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


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu,
                                                                 "tanh": torch.tanh}
"""The hidden layers' nonlinearities an MLP can use, by name."""


def mlp_forward(params: Params, x: torch.Tensor, transforms: LayerTransforms | None = None,
                activation: str = "relu") -> torch.Tensor:
    """MLP with `activation` (ACTIVATIONS) after every hidden layer; the last layer is
    linear. With `transforms`, layer i's affine output passes through `transforms[i]`
    before the nonlinearity (see contract.Task.layers)."""
    nonlinearity = ACTIVATIONS[activation]
    n_layers = len(params) // 2
    for i in range(n_layers):
        x = F.linear(x, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
        if transforms is not None:
            x = transforms[i](x)
        if i < n_layers - 1:
            x = nonlinearity(x)
    return x


def mlp_layers(params: Params) -> list[tuple[str, ...]]:
    """The MLP's parameter keys grouped by layer, in forward order, weight first."""
    return [(f"layers.{i}.weight", f"layers.{i}.bias") for i in range(len(params) // 2)]


def mlp_head_keys(params: Params) -> tuple[str, ...]:
    last = len(params) // 2 - 1
    return (f"layers.{last}.weight", f"layers.{last}.bias")


# -- conv-4 (Vinyals et al. 2016; Finn et al. 2017) ----------------------------------------------
CONV4_BLOCKS = 4
CONV4_HEAD_KEYS = ("head.weight", "head.bias")


def conv4_feature_size(filters: int, image_size: int) -> int:
    """Width of the flattened features after four 2×2 max-pools (floor division each)."""
    for _ in range(CONV4_BLOCKS):
        image_size //= 2
    return filters * image_size * image_size


def conv4_init(channels: int, filters: int, image_size: int, ways: int,
               generator: torch.Generator) -> Params:
    """Four blocks of 3×3 conv (`filters` channels) → batch norm → ReLU → 2×2 max-pool, then
    a linear head to `ways` logits. Keys: `block{i}.conv.weight|bias`,
    `block{i}.norm.weight|bias`, `head.weight|bias`."""
    params = {}
    fan_in_channels = channels
    for i in range(CONV4_BLOCKS):
        fan_in = fan_in_channels * 9
        params[f"block{i}.conv.weight"] = uniform_fan_in((filters, fan_in_channels, 3, 3),
                                                         fan_in, generator)
        params[f"block{i}.conv.bias"] = uniform_fan_in((filters,), fan_in, generator)
        params[f"block{i}.norm.weight"] = torch.ones(filters)
        params[f"block{i}.norm.bias"] = torch.zeros(filters)
        fan_in_channels = filters
    features = conv4_feature_size(filters, image_size)
    params["head.weight"] = uniform_fan_in((ways, features), features, generator)
    params["head.bias"] = uniform_fan_in((ways,), features, generator)
    return params


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               eps: float = 1e-5) -> torch.Tensor:
    """Batch norm with the statistics of this batch (no running averages), per channel.

    Outside a vmap over tasks this is PyTorch's native kernel, the one nn.BatchNorm2d
    runs. Under torch.func.vmap, F.batch_norm's second-order derivative is wrong in torch
    2.14 (see tests/test_conv4.py), so there it is written from primitive ops, which
    differentiate correctly at every order; the variance is the mean of the centred
    squares, which the normalisation needs anyway (torch.var_mean was several times
    slower on CPU)."""
    if not under_task_vmap():
        return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    channels = (0, 2, 3)
    centred = x - x.mean(dim=channels, keepdim=True)
    var = (centred * centred).mean(dim=channels, keepdim=True)
    scale = torch.rsqrt(var + eps) * weight.view(1, -1, 1, 1)
    return centred * scale + bias.view(1, -1, 1, 1)


def conv4_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits for images `x` of shape (N, C, H, W); batch norm uses the statistics of `x`
    (one task's support or query set), as MAML's reference implementation does.

    ReLU follows the pool (it commutes with max,
    values and gradients alike) so that it touches a quarter of the elements."""
    for i in range(CONV4_BLOCKS):
        x = F.conv2d(x, params[f"block{i}.conv.weight"], params[f"block{i}.conv.bias"],
                     padding=1)
        x = batch_norm(x, params[f"block{i}.norm.weight"], params[f"block{i}.norm.bias"])
        x = F.relu(F.max_pool2d(x, 2))
    return F.linear(x.flatten(1), params["head.weight"], params["head.bias"])


# -- conv-4 with strided convolutions (Finn et al.'s and supervised-reptile's Omniglot net) --------
STRIDED_BATCH_NORM_EPS = 1e-3
"""TensorFlow's batch-norm ε (tf.layers.batch_normalization, tf.contrib.layers.batch_norm)."""


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int,
                   generator: torch.Generator) -> torch.Tensor:
    """U(−√(6/(fan_in + fan_out)), +√(6/(fan_in + fan_out))): TensorFlow's default kernel
    initialisation (glorot_uniform)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def same_size(size: int) -> int:
    """Output size of a stride-2 convolution with TensorFlow's "same" padding: ⌈size/2⌉."""
    return -(-size // 2)


def conv4_strided_feature_size(filters: int, image_size: int) -> int:
    """Width of the flattened features after four stride-2 convolutions."""
    for _ in range(CONV4_BLOCKS):
        image_size = same_size(image_size)
    return filters * image_size * image_size


def conv4_strided_init(channels: int, filters: int, image_size: int, ways: int,
                       generator: torch.Generator) -> Params:
    """Four blocks of 3×3 stride-2 conv (`filters` channels) → batch norm → ReLU, no
    pooling, then a linear head: the Omniglot network of openai/supervised-reptile
    (models.py, OmniglotModel) and of MAML's code. Kernels Glorot-uniform, biases zero
    (tf.layers' defaults). Keys as conv4_init's."""
    params = {}
    fan_in_channels = channels
    for i in range(CONV4_BLOCKS):
        params[f"block{i}.conv.weight"] = glorot_uniform(
            (filters, fan_in_channels, 3, 3), fan_in_channels * 9, filters * 9, generator)
        params[f"block{i}.conv.bias"] = torch.zeros(filters)
        params[f"block{i}.norm.weight"] = torch.ones(filters)
        params[f"block{i}.norm.bias"] = torch.zeros(filters)
        fan_in_channels = filters
    features = conv4_strided_feature_size(filters, image_size)
    params["head.weight"] = glorot_uniform((ways, features), features, ways, generator)
    params["head.bias"] = torch.zeros(ways)
    return params


def conv4_strided_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits of conv4_strided_init's network for images (N, C, H, W). TensorFlow's "same"
    padding for a stride-2 3×3 convolution pads max(2(⌈n/2⌉ − 1) + 3 − n, 0) rows, the
    extra one at the bottom (and columns, at the right); batch norm on the batch's
    statistics with ε = 1e-3."""
    for i in range(CONV4_BLOCKS):
        height, width = x.shape[-2:]
        rows = max(2 * (same_size(height) - 1) + 3 - height, 0)
        cols = max(2 * (same_size(width) - 1) + 3 - width, 0)
        x = F.pad(x, (cols // 2, cols - cols // 2, rows // 2, rows - rows // 2))
        x = F.conv2d(x, params[f"block{i}.conv.weight"], params[f"block{i}.conv.bias"],
                     stride=2)
        x = batch_norm(x, params[f"block{i}.norm.weight"], params[f"block{i}.norm.bias"],
                       eps=STRIDED_BATCH_NORM_EPS)
        x = F.relu(x)
    return F.linear(x.flatten(1), params["head.weight"], params["head.bias"])
