"""The Reptile crosschecks (crosscheck/reptile_torch.py, crosscheck/supervised_reptile.py)
in their quick form: the protocols match their sources' code, and a check fails when one
setting is changed."""

from crosscheck import reptile_torch, supervised_reptile
from crosscheck.planned import planned_config


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
    config = planned_config("reptile", "logistic", protocol="reptile-torch")
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
    assert measured["(a) φ after two meta-iterations"] < 1e-7
    assert measured["(b) θ after 50 test-time steps"] < 1e-7


def test_supervised_reptile_check_fails_on_a_changed_setting():
    config = planned_config("reptile", "omniglot")
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
