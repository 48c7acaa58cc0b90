"""The outer optimisers a trial builds (benchsuite.running.config.Settings): AdamW's decoupled
weight decay, Adam's ε and the cosine schedule, against their closed forms on a hand-made
φ and gradient, and the planning check of their values."""

import math

import torch

from benchsuite.core.settings import problems
from benchsuite.running.config import ENGINE_SETTINGS, RUNNER_DEFAULTS
from benchsuite.running.trial import make_optimizer, make_schedule


def config(**keys):
    return {**RUNNER_DEFAULTS, "meta_lr": 0.1, "iterations": 8, **keys}


def one_step(settings, phi, gradient):
    phi = phi.clone().requires_grad_()
    optimizer = make_optimizer(settings, [phi])
    phi.grad = gradient.clone()
    optimizer.step()
    return phi.detach()


PHI = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
GRAD = torch.tensor([0.3, 1e-4, -2.0], dtype=torch.float64)


def test_adamw_decays_the_weights_apart_from_the_adam_step():
    """First AdamW step: φ(1 − η·wd) − η g / (|g| + ε) (bias-corrected moments are g, g²)."""
    got = one_step(config(meta_optimizer="adamw", meta_weight_decay=0.25), PHI, GRAD)
    expected = PHI * (1 - 0.1 * 0.25) - 0.1 * GRAD / (GRAD.abs() + 1e-8)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


def test_adam_takes_its_epsilon_and_an_l2_weight_decay():
    """Adam with decay: the gradient is g + wd·φ; ε = 1e-3 damps the small coordinate."""
    got = one_step(config(meta_optimizer="adam", meta_weight_decay=0.5, meta_adam_eps=1e-3),
                   PHI, GRAD)
    g = GRAD + 0.5 * PHI
    torch.testing.assert_close(got, PHI - 0.1 * g / (g.abs() + 1e-3), rtol=1e-12, atol=1e-14)
    plain = one_step(config(meta_optimizer="sgd"), PHI, GRAD)
    torch.testing.assert_close(plain, PHI - 0.1 * GRAD, rtol=1e-12, atol=1e-14)


def test_cosine_schedule_anneals_to_zero_over_the_iterations():
    settings = config(meta_lr_schedule="cosine", meta_optimizer="sgd")
    optimizer = make_optimizer(settings, [PHI.clone().requires_grad_()])
    schedule = make_schedule(settings, optimizer)
    rates = []
    for _ in range(settings["iterations"] + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [0.05 * (1 + math.cos(math.pi * k / 8)) for k in range(9)]
    for rate, closed_form in zip(rates, expected):
        assert math.isclose(rate, closed_form, rel_tol=1e-12, abs_tol=1e-15)
    assert make_schedule(config(), optimizer) is None  # constant


def value_problems(config):
    return problems(ENGINE_SETTINGS, config)


def test_planning_rejects_values_no_optimiser_takes():
    assert value_problems(config(meta_optimizer="adamax")) == [
        "meta_optimizer must be one of adam, adamw, sgd (got 'adamax')"]
    assert value_problems(config(meta_weight_decay=-0.1)) == [
        "meta_weight_decay must be at least 0 (got -0.1)"]
    assert value_problems(config(meta_lr_schedule="step")) == [
        "meta_lr_schedule must be one of constant, linear, cosine (got 'step')"]


def test_new_keys_at_their_neutral_values_keep_a_trial_id():
    """meta_weight_decay = 0 and meta_adam_eps = 1e-8 run what trials ran before those keys
    existed, so they leave the id as it was; any other value changes it."""
    from benchsuite.running.config import trial_id

    before = {k: v for k, v in config().items()
              if k not in ("meta_weight_decay", "meta_adam_eps")}
    code = {"method": "abc"}
    assert trial_id("maml", "sinusoid", config(), code) == trial_id("maml", "sinusoid",
                                                                      before, code)
    assert trial_id("maml", "sinusoid", config(meta_weight_decay=0.01), code) != \
        trial_id("maml", "sinusoid", before, code)
