"""The functional conv-4 and its second-order meta-gradient under vmap.

torch.func.vmap of a second-order MAML loss through F.batch_norm gives a wrong
meta-gradient in torch 2.14 (../shared/repro/vmap_batchnorm_second_order.py); these tests
pin our primitive-op batch norm against torch.nn and learn2learn."""

import learn2learn as l2l
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchsuite.blocks.models import conv4_feature_size, conv4_forward, conv4_init
from tests.conftest import small_config

WAYS, FILTERS, SIZE = 5, 8, 28


def reference_network(params):
    """The same conv-4 as torch.nn modules, loaded with `params`."""
    blocks = []
    for i in range(4):
        conv = nn.Conv2d(1 if i == 0 else FILTERS, FILTERS, 3, padding=1)
        norm = nn.BatchNorm2d(FILTERS, track_running_stats=False)
        for part, module in (("conv", conv), ("norm", norm)):
            module.weight.data = params[f"block{i}.{part}.weight"]
            module.bias.data = params[f"block{i}.{part}.bias"]
        blocks += [conv, norm, nn.ReLU(), nn.MaxPool2d(2)]
    head = nn.Linear(conv4_feature_size(FILTERS, SIZE), WAYS)
    head.weight.data, head.bias.data = params["head.weight"], params["head.bias"]
    return nn.Sequential(*blocks, nn.Flatten(), head).double()


def random_batch(tasks, query, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    from benchsuite.core.contract import EpisodeBatch

    return EpisodeBatch(torch.rand(tasks, WAYS, 1, SIZE, SIZE, generator=g, dtype=dtype),
                        torch.arange(WAYS).expand(tasks, -1),
                        torch.rand(tasks, WAYS * query, 1, SIZE, SIZE, generator=g, dtype=dtype),
                        torch.arange(WAYS).repeat_interleave(query).expand(tasks, -1))


@pytest.fixture
def params():
    p = conv4_init(1, FILTERS, SIZE, WAYS, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    # non-trivial batch-norm affine parameters, so they enter the meta-gradient
    for i in range(4):
        p[f"block{i}.norm.weight"] = 1 + 0.3 * torch.randn(FILTERS, generator=g)
        p[f"block{i}.norm.bias"] = 0.3 * torch.randn(FILTERS, generator=g)
    return {k: v.double() for k, v in p.items()}


def test_conv4_forward_matches_torch_nn_in_training_mode(params):
    x = torch.rand(7, 1, SIZE, SIZE, dtype=torch.float64)
    torch.testing.assert_close(conv4_forward(params, x), reference_network(params)(x))


def relative_error(a, b):
    a = torch.cat([v.flatten() for v in a.values()])
    b = torch.cat([v.flatten() for v in b.values()])
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_second_order_maml_through_conv4_matches_learn2learn_batched_and_looped(registry, params,
                                                                             dtype):
    params = {k: v.to(dtype) for k, v in params.items()}
    task_cls, maml_cls = registry.task("omniglot").cls, registry.method("maml").cls
    config = small_config(task_cls, maml_cls, filters=FILTERS, inner_steps=2, inner_lr=0.4)
    task = task_cls(config, torch.device("cpu"))
    batch = random_batch(tasks=4, query=2, dtype=dtype)

    by_vmap = maml_cls({**config, "batching": "vmap"}).meta_gradient(task, params, batch)
    by_loop = maml_cls({**config, "batching": "loop"}).meta_gradient(task, params, batch)
    assert relative_error(by_vmap.grads, by_loop.grads) < 1e-5

    network = reference_network(params).to(dtype)
    learner = l2l.algorithms.MAML(network, lr=0.4, first_order=False)
    for t in range(len(batch)):
        clone = learner.clone()
        for _ in range(2):
            clone.adapt(F.cross_entropy(clone(batch.support_x[t]), batch.support_y[t]))
        (F.cross_entropy(clone(batch.query_x[t]), batch.query_y[t]) / len(batch)).backward()
    names = [*(f"block{i}.{part}.{kind}" for i in range(4) for part in ("conv", "norm")
               for kind in ("weight", "bias")), "head.weight", "head.bias"]
    by_l2l = dict(zip(names, (p.grad for p in network.parameters()), strict=True))
    assert relative_error(by_vmap.grads, by_l2l) < 1e-5
    assert relative_error(by_loop.grads, by_l2l) < 1e-5

    # a per-channel constant in front of batch norm cancels: the conv biases' exact
    # meta-gradient is zero (the F.batch_norm-under-vmap bug makes it non-zero)
    cancelled = 1e-10 if dtype == torch.float64 else 1e-5
    for i in range(4):
        assert by_vmap.grads[f"block{i}.conv.bias"].abs().max() < cancelled
