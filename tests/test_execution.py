"""The engine's execution of a meta-batch (benchsuite.core.execution): chunked accumulation
gives every method's whole-batch meta-gradient, first-order MAML records no graph through
its inner loop, and a trial's record states the path it ran."""

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from benchsuite.core.execution import chunk_bounds, chunked_meta_gradient
from benchsuite.core.functional import flatten
from benchsuite.core.seeding import generator
from benchsuite.running.config import resolve
from benchsuite.running.trial import meta_gradient, run_trial

# one small task per problem kind; every registered method runs on at least one of them
TASKS = {"sinusoid": {"meta_batch": 5, "inner_steps": 2},
         "quadratic": {"meta_batch": 5},
         "hypercleaning": {"meta_batch": 1, "inner_steps": 5, "train_size": 40,
                           "validation_size": 40}}


def build(registry, method, task, **overrides):
    task_cls, method_cls = registry.task(task).cls, registry.method(method).cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu", options={},
                     overrides=[])
    config.update(TASKS[task], **overrides)
    task_obj = task_cls(config, torch.device("cpu"))
    phi = method_cls(config).init_meta_params(task_obj, generator("test-init"))
    phi = {k: v.double() for k, v in phi.items()}
    batch = task_obj.sample_batch("train", config["meta_batch"], generator("test-batch"))
    batch = type(batch)(*(t.double() if t.is_floating_point() else t for t in batch.tensors()))
    return method_cls, task_obj, phi, batch, config


def pairs(registry):
    for method in registry.canonical_methods():
        method_cls = registry.method(method).cls
        if method_cls.adapts_randomly:  # its draws depend on how tasks are grouped
            continue
        for task in TASKS:
            if method_cls.incompatibility(registry.task(task).cls) is None:
                yield method, task


def test_chunk_bounds():
    assert chunk_bounds(5, 0) == [(0, 5)]
    assert chunk_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert chunk_bounds(3, 7) == [(0, 3)]


@pytest.mark.parametrize("chunk,batching", [(1, "loop"), (2, "vmap"), (2, "loop")])
def test_chunked_meta_gradient_equals_the_whole_batch_for_every_method(registry, chunk,
                                                                       batching):
    for method, task in pairs(registry):
        if TASKS[task]["meta_batch"] == 1:
            continue
        method_cls, task_obj, phi, batch, config = build(registry, method, task)
        whole = method_cls(config).meta_gradient(task_obj, phi, batch)
        chunked = meta_gradient(method_cls({**config, "meta_chunk": chunk, "batching": batching}),
                                task_obj, phi, batch)
        a, b = flatten(chunked.grads), flatten({k: whole.grads[k] for k in chunked.grads})
        assert float((a - b).norm()) <= 1e-6 * float(b.norm()), (method, task)
        assert chunked.outer_loss == pytest.approx(float(whole.outer_loss), rel=1e-6), (
            method, task)


def test_chunks_are_weighted_by_size():
    # a fake meta-gradient: the per-task value is the task index; the batch mean of 0..4
    # is 2 whatever the chunks (sizes 2, 2, 1)
    class Batch:
        def __init__(self, start, stop):
            self.start, self.stop = start, stop

        def __len__(self):
            return self.stop - self.start

        def slice(self, start, stop):
            return Batch(self.start + start, self.start + stop)

    from benchsuite.core.contract import MetaGradient

    def mean_of_indices(part):
        values = torch.arange(part.start, part.stop, dtype=torch.float64)
        return MetaGradient(grads={"w": values.mean().reshape(1)}, outer_loss=float(values.mean()),
                            extras={"n": float(len(part))})

    result = chunked_meta_gradient(mean_of_indices, Batch(0, 5), 2)
    assert float(result.grads["w"]) == pytest.approx(2.0)
    assert result.outer_loss == pytest.approx(2.0)
    assert result.extras["n"] == pytest.approx((2 * 2 + 2 * 2 + 1 * 1) / 5)


class PeakLiveBytes(TorchDispatchMode):
    """The peak of the bytes held by tensors that ops produced while the mode was on,
    counted below torch.func's transforms (one count per storage, freed when it is)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self.free, key)
        return out

    def free(self, key):
        self.now -= self.live.pop(key, 0)


@pytest.mark.parametrize("batching", ["vmap", "loop"])
def test_first_order_maml_keeps_no_graph_of_its_inner_loop(registry, batching):
    peak = {}
    for method in ("fomaml", "maml"):
        for steps in (1, 8):
            method_cls, task, phi, batch, config = build(
                registry, method, "sinusoid", inner_steps=steps, batching=batching,
                shots=200, query=200)
            with PeakLiveBytes() as counter:
                method_cls(config).meta_gradient(task, phi, batch)
            peak[method, steps] = counter.peak
    assert peak["fomaml", 8] < 1.1 * peak["fomaml", 1]       # flat in inner steps
    assert peak["maml", 8] > 3 * peak["maml", 1]             # MAML keeps every step
    assert peak["fomaml", 1] < peak["maml", 1]


def test_record_states_execution_and_both_memory_peaks(registry):
    task_cls, method_cls = registry.task("sinusoid").cls, registry.method("maml").cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu", options={},
                     overrides=[])
    config.update(iterations=4, meta_batch=5, meta_chunk=2, test_episodes=20, val_episodes=10,
                  curve_points=2)
    measured = run_trial(method_cls, task_cls, config)
    assert measured["execution"] == {"meta_chunk": 2, "chunks_per_meta_batch": 3,
                                     "tasks_per_chunk": 2, "batching": "vmap",
                                     "eval_chunk": config["eval_chunk"],
                                     "compile": {
                                         "requested": "auto", "path": "eager",
                                         "reason": "4 iterations: too few to measure a "
                                                   "compiled step",
                                         "compile_s": 0.0, "eager_step_s": None,
                                         "compiled_step_s": None}}
    assert measured["memory"]["peak_bytes"] >= 0
    assert measured["memory"]["eval_peak_bytes"] >= 0
    assert "meta-training and evaluation" in measured["memory"]["method"]


def test_meta_training_peak_leaves_out_the_episodes_drawn_up_front(registry):
    """The test set is drawn before meta-training starts: its 88 MB (100 000 sinusoid
    episodes of 10 + 100 points, x and y in float32) are the workload's, not the peak's."""
    task_cls, method_cls = registry.task("sinusoid").cls, registry.method("maml").cls
    config = resolve(task_cls, method_cls, seed=0, budget="quick", device="cpu", options={},
                     overrides=[])
    config.update(iterations=8, test_episodes=100_000, val_episodes=5, curve_points=1,
                  compile="off")
    test_set_bytes = 100_000 * (10 + 100) * 2 * 4
    memory = run_trial(method_cls, task_cls, config, stop_after=4)["memory"]
    assert memory["peak_bytes"] < test_set_bytes / 2
