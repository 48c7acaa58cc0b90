"""Benchmarks run with `nox -s bench` (pytest-benchmark enabled); not part of the tests."""

import torch

torch.set_num_threads(2)
