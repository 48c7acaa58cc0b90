"""The non-vision tasks and the hyper-representation variant: their problems are what the
docstrings say, and meta-training improves what it should."""

import torch

from benchsuite.core.functional import flatten
from benchsuite.running.trial import run_trial
from tests.conftest import small_config
from tests.test_task_data import task_on, write_omniglot


def test_logistic_episodes_are_logistic_curves_within_the_sample_radius(registry):
    task_cls = registry.task("logistic").cls
    config = small_config(task_cls, registry.method("maml").cls)
    batch = task_cls(config, torch.device("cpu")).sample_batch(
        "train", 50, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (50, 10, 1) and batch.query_x.shape == (50, 90, 1)
    x = torch.cat([batch.support_x, batch.query_x], 1).squeeze(-1)
    y = torch.cat([batch.support_y, batch.query_y], 1).squeeze(-1)
    assert x.abs().max() <= 4
    assert 0 < y.min() and y.max() < 2
    # L σ(k (x − x₀)) with k > 0 is increasing in x, and three points pin L, k and x₀
    order = x.argsort(dim=1)
    assert (torch.diff(y.gather(1, order), dim=1) >= 0).all()


def test_f1_score_closed_form():
    from benchsuite.tasks.hypercleaning import f1_score

    flagged = torch.tensor([True, True, False, False, True])
    truth = torch.tensor([True, False, True, False, True])
    # precision 2/3, recall 2/3
    assert abs(f1_score(flagged, truth) - 2 / 3) < 1e-12


def test_hypercleaning_corrupts_the_stated_fraction_and_learns_to_flag_it(registry):
    task_cls, method_cls = registry.task("hypercleaning").cls, registry.method("maml").cls
    config = small_config(task_cls, method_cls, iterations=40, curve_points=1,
                          inner_steps=50, eval_inner_steps=50)
    task = task_cls(config, torch.device("cpu"))
    assert int(task.corrupted.sum()) == 250
    uniform = task.final_metrics(task.init_meta_params(torch.Generator()))
    assert uniform["corrupted_f1"] == 0.0  # σ(0) = ½: nothing flagged yet

    result = run_trial(method_cls, task_cls, config)
    assert result["metrics"]["corrupted_f1"] > 0.8
    start, end = result["curve"][0]["val_accuracy"], result["curve"][-1]["val_accuracy"]
    assert end > start + 0.03


def test_omniglot_rep_learns_a_backbone_with_a_zero_initialised_head(registry, tmp_path,
                                                                    monkeypatch):
    write_omniglot(tmp_path)
    task_cls, config = task_on(registry, "omniglot-rep", tmp_path, monkeypatch, filters=4)
    method_cls = registry.method("maml").cls
    assert task_cls.kind == "meta-representation"
    task = task_cls({**config, "inner_steps": 2}, torch.device("cpu"))
    phi = task.init_meta_params(torch.Generator().manual_seed(0))
    assert not set(phi) & set(task.head_keys)
    theta = task.initial_theta(phi)
    assert set(theta) == set(task.head_keys)
    assert all((v == 0).all() for v in theta.values())

    # float64, so that vmap and the loop agree to rounding
    phi = {k: v.double() for k, v in phi.items()}
    batch = task.sample_batch("train", 3, torch.Generator().manual_seed(0))
    batch.support_x, batch.query_x = batch.support_x.double(), batch.query_x.double()
    grads = {}
    for batching in ("vmap", "loop"):
        method = method_cls({**task.config, "batching": batching})
        grads[batching] = flatten(method.meta_gradient(task, phi, batch).grads)
    assert (grads["vmap"] - grads["loop"]).norm() < 1e-8 * grads["loop"].norm()
    assert grads["loop"].norm() > 0
