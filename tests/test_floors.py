"""The floors: `scratch` (φ₀ untrained, step size tuned on validation) and `transfer`
(Chen et al. 2019's Baseline: a global-label classifier, a new head fitted at test)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchsuite.blocks.fewshot import ClassImages, FewShotClassification
from benchsuite.blocks.models import CONV4_HEAD_KEYS, conv4_forward
from benchsuite.core.contract import task_part
from benchsuite.core.seeding import generator
from benchsuite.running.trial import run_trial
from tests.conftest import small_config


@pytest.fixture
def scratch(registry):
    task_cls, method_cls = registry.task("sinusoid").cls, registry.method("scratch").cls
    config = small_config(task_cls, method_cls, test_episodes=30, val_episodes=10,
                          curve_points=2)
    return task_cls, method_cls, config


def test_scratch_phi_never_changes(scratch):
    task_cls, method_cls, config = scratch
    assert config["iterations"] == 0  # its task override: no meta-training
    task, method = task_cls(config, torch.device("cpu")), method_cls(config)
    phi = method.init_meta_params(task, generator("sinusoid", 0, "init"))
    start = {k: v.clone() for k, v in phi.items()}
    params = [v.requires_grad_() for v in phi.values()]
    optimizer = torch.optim.Adam(params, lr=0.1)
    for t in range(3):
        batch = task.sample_batch("train", 4, generator("sinusoid", t, "train"))
        result = method.meta_gradient(task, phi, batch)
        assert math.isfinite(result.outer_loss)
        for name, tensor in phi.items():
            assert torch.count_nonzero(result.grads[name]) == 0
            tensor.grad = result.grads[name]
        optimizer.step()
    assert all(torch.equal(phi[k], start[k]) for k in phi)

    # trained for 0 or for 3 (no-op) iterations: the same test scores, episode for episode
    zero = run_trial(method_cls, task_cls, config)["metrics"]
    three = run_trial(method_cls, task_cls, {**config, "iterations": 3})["metrics"]
    assert zero["episode_scores"] == three["episode_scores"]
    assert zero["mse"] == three["mse"] and zero["chosen_step_size"] == three["chosen_step_size"]


def test_scratch_step_size_comes_from_validation_episodes_only(scratch):
    task_cls, method_cls, config = scratch
    task, method = task_cls(config, torch.device("cpu")), method_cls(config)
    splits = []
    sample = task.sample_batch
    task.sample_batch = lambda split, size, gen: (splits.append(split), sample(split, size,
                                                                             gen))[1]
    method.after_training(task, method.init_meta_params(task, generator("sinusoid", 0, "init")))
    assert splits == ["validation"]
    scores = method.validation_scores
    assert sorted(scores) == sorted({0.01, 0.03, 0.1, 0.3, 0.4, 1.0, config["inner_lr"]})
    best = min((s, lr) for lr, s in scores.items() if math.isfinite(s))[1]
    assert method.step_size == best
    # the score of a grid value is the validation mean after eval_inner_steps plain GD steps
    episodes = sample("validation", config["val_episodes"],
                      generator("sinusoid", 0, "validation"))
    phi = task.init_meta_params(generator("sinusoid", 0, "init"))
    lr, per_episode = 0.3, []
    for e in range(len(episodes)):
        theta = {k: v.clone().requires_grad_() for k, v in task.initial_theta(phi).items()}
        for _ in range(config["eval_inner_steps"]):
            loss = task.inner_loss(theta, phi, episodes.support_x[e], episodes.support_y[e])
            grads = torch.autograd.grad(loss, list(theta.values()))
            theta = {k: (v - lr * g).detach().requires_grad_()
                     for (k, v), g in zip(theta.items(), grads)}
        per_episode.append(float(task.score(theta, phi, episodes.query_x[e],
                                            episodes.query_y[e]).detach().mean()))
    assert scores[0.3] == pytest.approx(float(np.mean(per_episode)), rel=1e-5)


class TinyImages(FewShotClassification):
    """Random 16×16 one-channel images of 6 classes (5 images each) in every split."""

    name = "tiny-images"
    channels, image_size = 1, 16
    defaults = {"ways": 3, "shots": 2, "query": 2, "filters": 4, "rotations": False,
                "inner_steps": 1, "inner_lr": 0.1, "meta_batch": 2, "meta_lr": 1e-3,
                "meta_optimizer": "adam", "iterations": 2, "eval_inner_steps": 2,
                "batching": "loop"}

    def load_split(self, split):
        g = torch.Generator().manual_seed(len(split))
        images = torch.randint(0, 256, (30, 1, 16, 16), generator=g, dtype=torch.uint8)
        return ClassImages(images, [i // 5 for i in range(30)])


@pytest.fixture
def transfer(registry):
    method_cls = registry.method("transfer").cls
    config = small_config(TinyImages, method_cls, val_episodes=4, test_episodes=4,
                          curve_points=1, batch_size=8)
    task, method = TinyImages(config, torch.device("cpu")), method_cls(config)
    phi = method.init_meta_params(task, generator("tiny-images", 0, "init"))
    return task, method, phi, config


def test_transfer_fits_a_new_zero_head_on_a_frozen_backbone(transfer):
    task, method, phi, _ = transfer
    episode = task.sample_batch("test", 1, generator("tiny-images", 0, "test"))
    sx, sy = episode.support_x[0], episode.support_y[0]
    theta = method.adapt_with(task, phi, sx, sy, 3, 0.2)

    backbone = {k: v for k, v in task_part(phi).items() if k not in CONV4_HEAD_KEYS}
    weight = torch.zeros(3, phi["head.weight"].shape[1], requires_grad=True)
    bias = torch.zeros(3, requires_grad=True)
    for _ in range(3):
        logits = conv4_forward({**backbone, "head.weight": weight, "head.bias": bias}, sx)
        g_weight, g_bias = torch.autograd.grad(F.cross_entropy(logits, sy), (weight, bias))
        weight = (weight - 0.2 * g_weight).detach().requires_grad_()
        bias = (bias - 0.2 * g_bias).detach().requires_grad_()
    assert torch.allclose(theta["head.weight"], weight, atol=1e-6)
    assert torch.allclose(theta["head.bias"], bias, atol=1e-6)
    assert all(torch.equal(theta[k], v) for k, v in backbone.items())  # frozen


def test_transfer_trains_one_classifier_on_global_labels(transfer, registry):
    task, method, phi, config = transfer
    assert phi["transfer:weight"].shape[0] == 6  # every training class, not the 3 ways
    result = method.meta_gradient(task, phi, task.sample_batch(
        "train", 2, generator("tiny-images", 0, "train")))
    assert math.isfinite(result.outer_loss)
    for key in CONV4_HEAD_KEYS:  # the episode head is not trained
        assert torch.count_nonzero(result.grads[key]) == 0
    assert torch.count_nonzero(result.grads["transfer:weight"]) > 0
    assert torch.count_nonzero(result.grads["block0.conv.weight"]) > 0
    # its step size is chosen on validation when training ends
    assert method.step_size is None
    method.after_training(task, phi)
    assert method.step_size in method.validation_scores
    assert "labelled_training_examples" in registry.method("transfer").cls.incompatibility(
        registry.task("sinusoid").cls)
