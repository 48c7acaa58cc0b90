"""Shared test fixtures. Tests run on the CPU with a fixed thread count."""

import os
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
# the user's protocol folder and listing cache stay out of the tests (and their commands)
_ISOLATED = Path(tempfile.mkdtemp(prefix="benchsuite-tests-"))
os.environ["BENCHSUITE_PROTOCOLS"] = str(_ISOLATED / "protocols")
os.environ["BENCHSUITE_CACHE"] = str(_ISOLATED / "cache")

REPO = Path(__file__).resolve().parents[1]
SHARED_OMNIGLOT = REPO.parent / "shared" / "data" / "omniglot-small"


@pytest.fixture(scope="session")
def registry():
    from benchsuite.running.registry import discover

    return discover()


def small_config(task_cls, method_cls, **overrides):
    """A resolved config for a fast in-test trial."""
    from benchsuite.running.config import resolve

    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu",
                     options={}, overrides=[])
    config.update(overrides)
    return config
