"""The compiled execution path (benchsuite.running.compiled): a compiled meta-step gives the
eager one's meta-gradient for every method that takes it, a trial records the path and
its compile time, and a compile that fails or does not pay leaves the trial eager, with
the reason recorded."""

import time

import pytest
import torch

from benchsuite.core.functional import flatten
from benchsuite.core.seeding import generator
from benchsuite.running import compiled
from benchsuite.running.config import resolve
from benchsuite.running.registry import discover
from benchsuite.running.trial import meta_gradient, run_trial

# one small float32 task per problem kind, tiny shapes: the compile time does not depend
# much on them, but the cold compile of one method takes 20-100 s on a shared 2-core CPU
TASKS = {"sinusoid": {"meta_batch": 3, "inner_steps": 2, "shots": 4, "query": 4,
                      "hidden": 8},
         "quadratic": {"meta_batch": 3, "inner_steps": 3, "dim": 4},
         "hypercleaning": {"meta_batch": 1, "inner_steps": 3, "train_size": 20,
                           "validation_size": 20}}
# the methods' own loops, short: a compiled step unrolls them, and tracing time grows with them
SHORT_LOOPS = {"cg_steps": 2, "fp_iterations": 2, "neumann_terms": 2, "truncate_steps": 1}
TRIAL = {"iterations": 12, "test_episodes": 4, "val_episodes": 4, "curve_points": 1,
         "eval_steps": ()}


def build(registry, method, task, **overrides):
    task_cls, method_cls = registry.task(task).cls, registry.method(method).cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu", options={},
                     overrides=[])
    config.update(TASKS[task], **overrides)
    config.update({k: v for k, v in SHORT_LOOPS.items() if k in config})
    task_obj = task_cls(config, torch.device("cpu"))
    method_obj = method_cls(config)
    phi = method_obj.init_meta_params(task_obj, generator("test-init"))
    batch = task_obj.sample_batch("train", config["meta_batch"], generator("test-batch"))
    return method_obj, task_obj, phi, batch, config


# methods dynamo cannot trace today: a trial records the error and stays eager
NOT_COMPILING = {"imaml": pytest.mark.xfail(
    strict=True, raises=torch._dynamo.exc.TorchRuntimeError,
    reason="dynamo traces its Hessian-vector products (jvp of grad under vmap) with a "
           "meta-device tensor: 'Tensor device mismatch', torch 2.14"),
    "l2l-maml": pytest.mark.xfail(
        strict=True, raises=RuntimeError,
        reason="learn2learn differentiates with torch.autograd.grad(create_graph=True): "
               "'torch.compile with aot_autograd does not currently support double "
               "backward', torch 2.14")}


def compilable(registry):
    """(method, task) for every method that meta-trains, on its first small task. The
    compiled path is the vmapped one: the defaults of these tasks."""
    for method in registry.canonical_methods():
        method_cls = registry.method(method).cls
        for task in TASKS:
            if method_cls.incompatibility(registry.task(task).cls) is None:
                yield method, task
                break


def relative_difference(a, b):
    """‖a − b‖ / ‖b‖; ‖a − b‖ where b is zero (a baseline that meta-trains nothing)."""
    a, b = flatten(a).double(), flatten(b).double()
    return float((a - b).norm() / (b.norm() if b.norm() > 0 else 1.0))


@pytest.mark.slow  # one cold compile per method: 20-100 s each on a shared 2-core CPU
@pytest.mark.parametrize("method, task", [
    pytest.param(method, task, marks=NOT_COMPILING[method]) if method in NOT_COMPILING else
    (method, task) for method, task in compilable(discover())])
def test_compiled_meta_gradient_equals_the_eager_one(registry, method, task):
    # every method's meta-step compiles from scratch: dynamo falls back to eager, silently,
    # once one code object was recompiled `recompile_limit` times in a process
    torch._dynamo.reset()
    method_obj, task_obj, phi, batch, config = build(registry, method, task)
    torch.manual_seed(0)
    eager = meta_gradient(method_obj, task_obj, phi, batch)
    torch.manual_seed(0)
    result = compiled.compiled_step(method_obj, task_obj)(phi, batch)
    error = relative_difference(result.grads, eager.grads)
    assert error <= 1e-6, f"{method} on {task}: compiled meta-gradient off by {error:.2e}"
    assert result.outer_loss == pytest.approx(eager.outer_loss, rel=1e-6)


def run(registry, method, task, **options):
    task_cls, method_cls = registry.task(task).cls, registry.method(method).cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu", options={},
                     overrides=[])
    config.update({**TASKS[task], **TRIAL, **options})
    return run_trial(method_cls, task_cls, config)


def test_a_compile_that_fails_leaves_the_trial_eager_with_the_reason(registry, monkeypatch):
    def failing(method, task):
        def step(phi, part):
            raise RuntimeError("backend exploded\nsecond line")
        return step

    monkeypatch.setattr(compiled, "compiled_step", failing)
    out = run(registry, "maml", "sinusoid", compile="on")
    eager = run(registry, "maml", "sinusoid", compile="off")
    outcome = out["execution"]["compile"]
    assert outcome["path"] == "eager"
    assert outcome["reason"] == "compile failed: RuntimeError: backend exploded"
    assert outcome["compile_s"] == out["timing"]["compile_s"] > 0
    # the failed step fell back to the eager meta-gradient: training is the eager trial's
    assert out["curve"][-1]["train_outer_loss"] == eager["curve"][-1]["train_outer_loss"]
    assert out["metrics"]["mse"] == eager["metrics"]["mse"]
    assert eager["execution"]["compile"] == {
        "requested": "off", "path": "eager", "reason": "compile=off", "compile_s": 0.0,
        "eager_step_s": None, "compiled_step_s": None}
    # the compiling step is out of the step times: the other 11 are timed
    assert len(out["curve"]) == 2 and out["timing"]["iterations"] == TRIAL["iterations"]


def test_a_compiled_step_slower_than_eager_is_dropped(registry, monkeypatch):
    def slow(method, task):
        eager = compiled.eager_step(method, task)

        def step(phi, part):  # far slower than the eager step, even on a loaded machine
            time.sleep(1.0)
            return eager(phi, part)
        return step

    monkeypatch.setattr(compiled, "compiled_step", slow)
    outcome = run(registry, "fomaml", "sinusoid", compile="on")["execution"]["compile"]
    assert outcome["path"] == "eager"
    assert outcome["reason"].startswith("did not pay: compiled step")
    assert outcome["compiled_step_s"] >= 1.0


def test_auto_compiles_only_when_the_eager_remainder_exceeds_the_expected_compile(
        registry, monkeypatch):
    calls = []

    def counted(method, task):
        calls.append(method.name)
        return compiled.eager_step(method, task)

    monkeypatch.setattr(compiled, "compiled_step", counted)
    outcome = run(registry, "fomaml", "sinusoid", compile="auto")["execution"]["compile"]
    assert calls == [] and outcome["path"] == "eager"
    assert outcome["reason"].startswith("does not pay: 8 remaining steps")
    monkeypatch.setattr(compiled, "EXPECTED_COMPILE_S", 0.0)
    outcome = run(registry, "fomaml", "sinusoid", compile="auto")["execution"]["compile"]
    assert calls == ["fomaml"] and outcome["compile_s"] > 0
    assert compiled.pays(0.01, 1000, 9.9) and not compiled.pays(0.01, 1000, 10.0)


def test_too_short_a_trial_never_compiles(registry):
    outcome = run(registry, "fomaml", "sinusoid", compile="on",
                  iterations=compiled.EAGER_PROBE + compiled.COMPILED_PROBE
                  )["execution"]["compile"]
    assert outcome["path"] == "eager" and outcome["reason"].startswith("7 iterations")


@pytest.mark.slow  # one compile of a tiny sinusoid meta-step: 20-60 s on a shared CPU
def test_a_trial_takes_the_compiled_path_and_records_it(registry):
    out = run(registry, "fomaml", "sinusoid", compile="on", iterations=40)
    outcome = out["execution"]["compile"]
    assert outcome["compile_s"] > 0
    assert outcome["compile_s"] == pytest.approx(out["timing"]["compile_s"], rel=1e-3)
    assert out["timing"]["total_s"] > out["timing"]["compile_s"] + out["timing"]["train_s"]
    if outcome["path"] == "compiled":
        assert out["timing"]["per_iteration_s"] < outcome["eager_step_s"]
