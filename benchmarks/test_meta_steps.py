"""One meta-gradient per method per workload, timed by pytest-benchmark. Benchmarks of a
workload share a group, so the JSON output compares methods side by side, and
`benchmarks.performance` turns it into the all-methods table of reports/PERFORMANCE.md.
(The comparisons with the external references are timed apart, interleaved in one process:
benchmarks/compare.py.) Workloads with `table_rounds` 0 are left out."""

import pytest
import torch

from benchmarks.workloads import (
    WORKLOADS,
    build_workload,
    execution_path,
    ours_meta_gradient,
    rounds,
    warmup_rounds,
    workload_methods,
)
from benchsuite.running.registry import discover

REGISTRY = discover()
CASES = [(workload, method) for workload, spec in WORKLOADS.items() if spec["table_rounds"]
         for method in workload_methods(REGISTRY, workload)]


@pytest.mark.parametrize("workload,method", CASES, ids=[f"{w}-{m}" for w, m in CASES])
def test_meta_gradient(benchmark, workload, method):
    built = build_workload(REGISTRY, workload, method)
    benchmark.group = workload
    benchmark.extra_info.update(workload=workload, method=method,
                                path=execution_path(built.config),
                                config={k: built.config[k] for k in WORKLOADS[workload]
                                        ["overrides"] if k in built.config})
    result = benchmark.pedantic(ours_meta_gradient, args=(built,),
                                rounds=rounds(WORKLOADS[workload]["table_rounds"]),
                                warmup_rounds=warmup_rounds(2))
    assert all(torch.isfinite(g).all() for g in result.grads.values())
