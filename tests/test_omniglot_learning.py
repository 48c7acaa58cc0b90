"""MAML meta-trained on real Omniglot drawings learns: 5-way 1-shot accuracy on held-out
characters far above chance (0.2). Uses ../shared/data/omniglot-small (5 alphabets, 136
characters; skipped where absent) with a CPU-sized protocol: conv-4 with 32 filters,
meta-batch 8, 5 query images per class, 300 meta-iterations."""

import pytest

from benchsuite.blocks.data import DATA_ROOT_VARIABLE
from benchsuite.running.trial import run_trial
from tests.conftest import SHARED_OMNIGLOT, small_config


@pytest.mark.skipif(not (SHARED_OMNIGLOT / "images_background").is_dir(),
                    reason=f"real Omniglot subset not found at {SHARED_OMNIGLOT}")
def test_maml_on_real_omniglot_beats_chance_on_held_out_characters(registry, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_VARIABLE, str(SHARED_OMNIGLOT))
    task_cls, method_cls = registry.task("omniglot").cls, registry.method("maml").cls
    config = small_config(task_cls, method_cls, filters=32, meta_batch=8, query=5,
                          iterations=300, test_episodes=200, val_episodes=10, curve_points=1)
    assert task_cls.check_data(config) is None
    result = run_trial(method_cls, task_cls, config)
    accuracy = result["metrics"]["accuracy"]
    assert result["metrics"]["accuracy_n"] == 200  # fixed test episodes, scored per episode
    assert accuracy > 0.5 > 2 * (1 / config["ways"]), result["metrics"]
    assert accuracy > result["curve"][0]["val_accuracy"] + 0.1
