"""The Reptile crosschecks (crosscheck/reptile_torch.py, crosscheck/supervised_reptile.py)
in their quick form: the protocols match their sources' code, and a check fails when one
setting is changed; the strided conv-4 they need against torch.nn."""

import torch
from torch import nn

from benchsuite.blocks.models import conv4_strided_forward, conv4_strided_init
from crosscheck import reptile_torch, supervised_reptile
from crosscheck.core import protocol_config


def failed(check):
    return ({s.name for s in check.settings if not s.match},
            {d.quantity for d in check.differences if not d.passed})


def test_reptile_torch_protocol_matches_its_source():
    check = reptile_torch.run(quick=True)
    assert check.passed, failed(check)
    measured = {d.quantity: d.rel_diff for d in check.differences}
    assert measured["(a) φ after one meta-update (iteration 0)"] < 1e-12
    assert measured["(b) θ after 32 test-time steps"] < 1e-12
    assert len(check.settings) >= 20 and check.deviations


def test_reptile_torch_check_fails_on_a_changed_setting():
    config = protocol_config("reptile", "logistic", named="reptile-torch")
    check = reptile_torch.check({**config, "inner_batches": "shuffled"}, quick=True)
    settings, differences = failed(check)
    assert not check.passed
    assert settings == {"mini-batch rule"}
    assert differences == {"mini-batch rule: distinct points per epoch"}
    check = reptile_torch.check({**config, "inner_lr": 0.03}, quick=True)
    settings, differences = failed(check)
    assert "inner step size" in settings
    assert {"(a) φ after one meta-update (iteration 0)",
            "(b) θ after 32 test-time steps"} <= differences


def test_supervised_reptile_protocol_matches_its_rules():
    check = supervised_reptile.run(quick=True)
    assert check.passed, failed(check)
    measured = {d.quantity: d.rel_diff for d in check.differences}
    assert measured["(a) φ after two meta-iterations"] < 1e-12
    assert measured["(b) θ after 50 test-time steps"] < 1e-12


def test_supervised_reptile_check_fails_on_a_changed_setting():
    config = protocol_config("reptile", "omniglot")
    settings, differences = failed(supervised_reptile.check(
        {**config, "inner_batches": "cycle"}, quick=True))
    assert "inner batches: passes over the shuffled task" in settings
    assert "first training batch's labels (ours, seeded)" in settings
    assert "mini-batches: distinct classes per batch" in differences
    settings, differences = failed(supervised_reptile.check(
        {**config, "inner_adam_state": "per_task"}, quick=True))
    assert settings == {"Adam's moments across tasks"}
    assert {"(a) φ after two meta-iterations", "(a) Adam's step count carried",
            "(b) θ after 50 test-time steps"} <= differences


def test_strided_conv4_is_the_tensorflow_network_in_torch_nn():
    """conv4_strided_forward against torch.nn with TensorFlow's "same" padding written out
    for 28×28 inputs (28 → 14 → 7 → 4 → 2: pads (0, 1), (0, 1), (1, 1), (0, 1)) and batch
    norm with ε = 1e-3 in training mode; Glorot-uniform kernels within their bound."""
    filters, ways = 8, 5
    params = conv4_strided_init(1, filters, 28, ways, torch.Generator().manual_seed(0))
    layers = []
    for i, pad in enumerate([(0, 1), (0, 1), (1, 1), (0, 1)]):
        conv = nn.Conv2d(1 if i == 0 else filters, filters, 3, stride=2)
        conv.weight.data = params[f"block{i}.conv.weight"]
        conv.bias.data = params[f"block{i}.conv.bias"]
        layers += [nn.ZeroPad2d((*pad, *pad)), conv, nn.BatchNorm2d(filters, eps=1e-3),
                   nn.ReLU()]
    head = nn.Linear(filters * 2 * 2, ways)
    head.weight.data, head.bias.data = params["head.weight"], params["head.bias"]
    reference = nn.Sequential(*layers, nn.Flatten(), head).train()
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(conv4_strided_forward(params, x), reference(x))
    bound = (6 / (9 * filters + 9 * filters)) ** 0.5
    assert 0.9 * bound < float(params["block1.conv.weight"].abs().max()) <= bound
    assert not params["head.bias"].any() and not params["block0.conv.bias"].any()
