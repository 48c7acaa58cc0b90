"""The MLP regression tasks on their shared base (benchsuite/blocks/regression.py), and the typed
`Settings` of every task: a seed gives the numbers it gave before the base existed, and a
task's own keys are declared, documented and kept apart from the runner's."""

import pytest
import torch

from benchsuite.blocks.regression import MLPRegression
from benchsuite.running.config import RUNNER_DEFAULTS
from benchsuite.running.plugin_rules import REQUIRED_TASK_DEFAULTS
from tests.conftest import small_config

# Drawn with tasks/sinusoid.py and tasks/logistic.py as they were before the shared base:
# φ₀ from manual_seed(7), then batches of 2 from manual_seed(3); `after` is the next
# torch.rand of the same generator, so a draw more or less shows too.
PINNED = {
    "sinusoid": {
        "hidden": 40,
        "w0": [0.06984508037567139, -0.602393627166748, 0.31842339038848877],
        "b2": [-0.0964614599943161],
        "phi_after": 0.5257340669631958,
        "train": {"shapes": ((2, 10, 1), (2, 10, 1)),
                  "sx": [-0.2838563919067383, -4.398837089538574, 2.718658447265625],
                  "sy": [-0.11186210811138153, 0.10082527995109558, 0.11713717877864838],
                  "qx": [-0.5669260025024414, -3.252871513366699],
                  "qy": [-0.3743647038936615, 0.12019138038158417],
                  "after": 0.7561529874801636},
        "test": {"shapes": ((2, 10, 1), (2, 100, 1)),
                 "sx": [-0.2838563919067383, -4.398837089538574, 2.718658447265625],
                 "sy": [-0.11186210811138153, 0.10082527995109558, 0.11713717877864838],
                 "qx": [0.5151557922363281, 3.333542823791504],
                 "qy": [0.2575964629650116, -0.06608924269676208],
                 "after": 0.8043569326400757},
    },
    "logistic": {
        "hidden": 64,
        "w0": [0.06984508037567139, -0.602393627166748, 0.31842339038848877],
        "b2": [0.06271874904632568],
        "phi_after": 0.7491143345832825,
        "train": {"shapes": ((2, 10, 1), (2, 90, 1)),
                  "sx": [2.1749267578125, 1.9495949745178223, 0.7553696632385254],
                  "sy": [0.4523892402648926, 0.4414300322532654, 0.35015860199928284],
                  "qx": [3.5503602027893066, -1.3273935317993164],
                  "qy": [0.623016893863678, 0.3674417734146118],
                  "after": 0.8571803569793701},
    },
}
PINNED["logistic"]["test"] = PINNED["logistic"]["train"]  # the same draw for every split


def exactly(tensor, values):
    """Raw draws, scaled and shifted, are the same floats on every machine."""
    assert tensor.tolist() == values


def closely(tensor, values):
    """Values through sin or a sigmoid may differ in the last bit between CPU kernels."""
    torch.testing.assert_close(tensor, torch.tensor(values), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_seed_gives_the_phi0_and_episodes_it_gave_before_the_shared_base(registry, name):
    task_cls = registry.task(name).cls
    pinned = PINNED[name]
    task = task_cls(small_config(task_cls, registry.method("maml").cls), torch.device("cpu"))
    generator = torch.Generator().manual_seed(7)
    phi = task.init_meta_params(generator)
    hidden = pinned["hidden"]
    assert {k: tuple(v.shape) for k, v in phi.items()} == {
        "layers.0.weight": (hidden, 1), "layers.0.bias": (hidden,),
        "layers.1.weight": (hidden, hidden), "layers.1.bias": (hidden,),
        "layers.2.weight": (1, hidden), "layers.2.bias": (1,)}
    exactly(phi["layers.0.weight"][:3, 0], pinned["w0"])
    exactly(phi["layers.2.bias"], pinned["b2"])
    assert float(torch.rand(1, generator=generator)) == pinned["phi_after"]
    for split in ("train", "test"):
        expected = pinned[split]
        generator = torch.Generator().manual_seed(3)
        batch = task.sample_batch(split, 2, generator)
        assert (batch.support_x.shape, batch.query_x.shape) == expected["shapes"]
        exactly(batch.support_x[0, :3, 0], expected["sx"])
        exactly(batch.query_x[1, -2:, 0], expected["qx"])
        closely(batch.support_y[0, :3, 0], expected["sy"])
        closely(batch.query_y[1, -2:, 0], expected["qy"])
        assert float(torch.rand(1, generator=generator)) == expected["after"]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_regression_tasks_share_the_base_and_its_layer_transforms(registry, name):
    task_cls = registry.task(name).cls
    assert issubclass(task_cls, MLPRegression) and task_cls.layer_transforms
    task = task_cls(small_config(task_cls, registry.method("maml").cls), torch.device("cpu"))
    phi = task.init_meta_params(torch.Generator().manual_seed(0))
    assert task.head_keys == task.layers(phi)[-1] == ("layers.2.weight", "layers.2.bias")
    batch = task.sample_batch("train", 1, torch.Generator().manual_seed(0))
    x, y = batch.support_x[0], batch.support_y[0]
    identity = [lambda h: h] * len(task.layers(phi))
    assert torch.equal(task.inner_loss(phi, phi, x, y, identity), task.inner_loss(phi, phi, x, y))
    doubled = [lambda h: 2 * h] * len(task.layers(phi))
    assert not torch.equal(task.score(phi, phi, x, y, doubled), task.score(phi, phi, x, y))


def test_every_task_declares_its_own_keys_as_typed_settings_apart_from_the_runners(registry):
    runner = {*RUNNER_DEFAULTS, *REQUIRED_TASK_DEFAULTS, "eval_inner_steps", "eval_steps"}
    for name in registry.canonical_tasks():
        plugin = registry.task(name)
        declared = {s.name for s in plugin.settings}
        assert declared, f"{name} declares no Settings"
        assert not declared & runner, f"{name} types runner keys {declared & runner}"
        assert all(s.doc for s in plugin.settings)
        # what is left untyped in its defaults is the runner's
        assert set(plugin.cls.defaults) - declared <= runner, name


def test_the_mini_imagenet_protocol_is_one_settings_for_its_four_tasks(registry):
    # the registry loads tasks/miniimagenet.py as a module of its own, beside the
    # benchsuite.tasks.miniimagenet the other three import: one class, two copies
    plugins = [registry.task(n) for n in ("miniimagenet", "tiered-imagenet", "cifarfs",
                                          "fc100")]
    assert {p.cls.Settings.__qualname__ for p in plugins} == {"ProtocolSettings"}
    assert all(p.settings == plugins[0].settings for p in plugins)


@pytest.mark.parametrize("task, key, value, message", [
    ("sinusoid", "shots", 0, "shots must be at least 1 (got 0)"),
    ("logistic", "sample_radius", 0.0, "sample_radius must be positive (got 0.0)"),
    ("hypercleaning", "corruption", 1.5, "corruption must lie in [0, 1] (got 1.5)"),
    ("omniglot", "class_split", "lake", "class_split must be one of pooled, "
     "background-evaluation (got 'lake')"),
])
def test_a_value_outside_its_field_is_one_line_at_planning(registry, task, key, value,
                                                           message):
    from benchsuite.core import settings

    task_cls = registry.task(task).cls
    config = small_config(task_cls, registry.method("maml").cls, **{key: value})
    assert settings.problems(list(registry.task(task).settings), config) == [message]


def test_cross_field_checks_stay_with_the_task(registry):
    method = registry.method("maml").cls
    logistic = registry.task("logistic").cls
    assert logistic.check_config(small_config(logistic, method, shots=100)) == [
        "need shots < samples, leaving query points (got shots=100, samples=100)"]
    quadratic = registry.task("quadratic").cls
    assert quadratic.check_config(small_config(quadratic, method, mu=6.0)) == [
        "need mu <= L (got mu=6.0, L=5.0)"]
