"""One meta-gradient per method per workload, timed by pytest-benchmark. Benchmarks of a
workload share a group, so the JSON output compares methods side by side, and
`benchsuite.performance` turns it into reports/PERFORMANCE.md."""

import pytest
import torch

from benchmarks.workloads import WORKLOADS, build_workload, workload_methods
from benchsuite.registry import discover

REGISTRY = discover()
CASES = [(workload, method) for workload in WORKLOADS
         for method in workload_methods(REGISTRY, workload)]


@pytest.mark.parametrize("workload,method", CASES, ids=[f"{w}-{m}" for w, m in CASES])
def test_meta_gradient(benchmark, workload, method):
    built = build_workload(REGISTRY, workload, method)
    benchmark.group = workload
    benchmark.extra_info.update(workload=workload, method=method,
                                config={k: built.config[k] for k in WORKLOADS[workload]
                                        ["overrides"] if k in built.config})
    result = benchmark.pedantic(built.method.meta_gradient,
                                args=(built.task, built.phi, built.batch),
                                rounds=WORKLOADS[workload]["rounds"], warmup_rounds=2)
    assert all(torch.isfinite(g).all() for g in result.grads.values())
