"""External references: MAML written the way users of learn2learn, TorchOpt and higher write
it, on ordinary `nn.Module`s — not our functional model wrapped.

Each reference is one small function taking an nn.Module, a loss function and a meta-batch
(our `EpisodeBatch`: the workload's own tensors) and returning a zero-argument meta-step:
it leaves the meta-gradient of the meta-batch's mean query loss in the module's `.grad`s
and returns (gradients in parameter order, mean query loss). No outer optimiser step: ours
(`method.meta_gradient`) stops at the meta-gradient too.

The modules are what a user defines for these workloads: conv-4 as four blocks of
Conv2d 3×3 (padding 1) → BatchNorm2d(track_running_stats=False) → ReLU → MaxPool2d(2) and a
Linear head; the sinusoid MLP 1-40-40-1 with ReLU. Their parameters come in the same order
and shapes as our φ, so `load_phi` starts them from the workload's φ₀ and the meta-gradients
can be compared entry for entry.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

MetaStep = Callable[[], tuple[list[torch.Tensor], float]]


# -- the models, as a user writes them --------------------------------------------------------
class Conv4(nn.Module):
    """Vinyals et al.'s / MAML's conv-4 as an ordinary module."""

    def __init__(self, channels: int, filters: int, image_size: int, ways: int):
        super().__init__()
        layers: list[nn.Module] = []
        for block in range(4):
            layers += [nn.Conv2d(channels if block == 0 else filters, filters, 3, padding=1),
                       nn.BatchNorm2d(filters, track_running_stats=False),
                       nn.ReLU(),
                       nn.MaxPool2d(2)]
            image_size //= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(filters * image_size * image_size, ways)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def mlp(hidden: int = 40) -> nn.Module:
    """The sinusoid regressor of Finn et al. 2017: 1-40-40-1 with ReLU."""
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


def load_phi(model: nn.Module, phi: dict[str, torch.Tensor]) -> nn.Module:
    """Copy φ into `model`'s parameters, matched by order (names differ, shapes must not)."""
    params = list(model.parameters())
    if len(params) != len(phi):
        raise ValueError(f"{type(model).__name__} has {len(params)} parameters, φ has "
                         f"{len(phi)}")
    with torch.no_grad():
        for p, (name, value) in zip(params, phi.items()):
            if p.shape != value.shape:
                raise ValueError(f"{name}: φ is {tuple(value.shape)}, the module's parameter "
                                 f"is {tuple(p.shape)}")
            p.copy_(value)
    return model


# -- the references ---------------------------------------------------------------------------
def learn2learn_maml(model: nn.Module, loss_fn, batch, inner_lr: float, inner_steps: int,
                     first_order: bool = False) -> MetaStep:
    """learn2learn's MAML loop, as in its examples. A user writes:

        maml = l2l.algorithms.MAML(model, lr=inner_lr, first_order=first_order)
        for each task t:
            learner = maml.clone()
            for k in range(inner_steps):
                learner.adapt(loss_fn(learner(support_x[t]), support_y[t]))
            (loss_fn(learner(query_x[t]), query_y[t]) / tasks).backward()

    and then steps an optimiser on maml.parameters()."""
    import learn2learn as l2l

    maml = l2l.algorithms.MAML(model, lr=inner_lr, first_order=first_order)
    tasks = len(batch)

    def meta_step():
        maml.zero_grad(set_to_none=True)
        total = 0.0
        for t in range(tasks):
            learner = maml.clone()
            for _ in range(inner_steps):
                learner.adapt(loss_fn(learner(batch.support_x[t]), batch.support_y[t]))
            query_loss = loss_fn(learner(batch.query_x[t]), batch.query_y[t]) / tasks
            query_loss.backward()
            total += query_loss.detach()
        return [p.grad for p in maml.parameters()], float(total)

    return meta_step


def torchopt_maml(model: nn.Module, loss_fn, batch, inner_lr: float,
                  inner_steps: int) -> MetaStep:
    """TorchOpt's differentiable-optimiser MAML, as in its few-shot examples. A user writes:

        inner_opt = torchopt.MetaSGD(model, lr=inner_lr)
        model_state = torchopt.extract_state_dict(model)
        opt_state = torchopt.extract_state_dict(inner_opt)
        for each task t:
            for k in range(inner_steps):
                inner_opt.step(loss_fn(model(support_x[t]), support_y[t]))
            (loss_fn(model(query_x[t]), query_y[t]) / tasks).backward()
            torchopt.recover_state_dict(model, model_state)
            torchopt.recover_state_dict(inner_opt, opt_state)
    """
    import torchopt

    inner_opt = torchopt.MetaSGD(model, lr=inner_lr)
    model_state = torchopt.extract_state_dict(model)
    opt_state = torchopt.extract_state_dict(inner_opt)
    params = list(model.parameters())
    tasks = len(batch)

    def meta_step():
        for p in params:
            p.grad = None
        total = 0.0
        for t in range(tasks):
            for _ in range(inner_steps):
                inner_opt.step(loss_fn(model(batch.support_x[t]), batch.support_y[t]))
            query_loss = loss_fn(model(batch.query_x[t]), batch.query_y[t]) / tasks
            query_loss.backward()
            total += query_loss.detach()
            torchopt.recover_state_dict(model, model_state)
            torchopt.recover_state_dict(inner_opt, opt_state)
        return [p.grad for p in params], float(total)

    return meta_step


def higher_maml(model: nn.Module, loss_fn, batch, inner_lr: float,
                inner_steps: int) -> MetaStep:
    """higher's MAML, as in its README and examples. A user writes:

        inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
        for each task t:
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (
                    fmodel, diffopt):
                for k in range(inner_steps):
                    diffopt.step(loss_fn(fmodel(support_x[t]), support_y[t]))
                (loss_fn(fmodel(query_x[t]), query_y[t]) / tasks).backward()
    """
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
    tasks = len(batch)

    def meta_step():
        model.zero_grad(set_to_none=True)
        total = 0.0
        for t in range(tasks):
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (
                    fmodel, diffopt):
                for _ in range(inner_steps):
                    diffopt.step(loss_fn(fmodel(batch.support_x[t]), batch.support_y[t]))
                query_loss = loss_fn(fmodel(batch.query_x[t]), batch.query_y[t]) / tasks
                query_loss.backward()
                total += query_loss.detach()
        return [p.grad for p in model.parameters()], float(total)

    return meta_step


def jax_maml(phi: dict[str, torch.Tensor], batch, inner_lr: float, inner_steps: int,
             first_order: bool = False) -> MetaStep:
    """MAML on the sinusoid MLP in JAX, as a JAX user writes it: the per-task loss of the
    adapted parameters, `jax.vmap` over the tasks, `jax.value_and_grad` of the mean, all
    under `jax.jit`:

        def adapted_query_loss(params, sx, sy, qx, qy):
            for k in range(inner_steps):
                g = jax.grad(loss)(params, sx, sy)       # stop_gradient(g): first order
                params = params - inner_lr * g
            return loss(params, qx, qy)
        step = jax.jit(jax.value_and_grad(
            lambda p, *data: jax.vmap(adapted_query_loss, (None, 0, 0, 0, 0))(p, *data).mean()))

    The parameters are φ's tensors as arrays (weights out × in, as in torch). The meta-step
    returns the gradients as torch tensors, for the comparison with ours."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    params = [jnp.asarray(v.detach().cpu().numpy()) for v in phi.values()]
    data = [jnp.asarray(t.detach().cpu().numpy()) for t in batch.tensors()]

    def forward(params, x):
        for layer in range(0, len(params), 2):
            x = x @ params[layer].T + params[layer + 1]
            if layer + 2 < len(params):
                x = jax.nn.relu(x)
        return x

    def loss(params, x, y):
        return jnp.mean((forward(params, x) - y) ** 2)

    def adapted_query_loss(params, support_x, support_y, query_x, query_y):
        for _ in range(inner_steps):
            grads = jax.grad(loss)(params, support_x, support_y)
            if first_order:
                grads = jax.lax.stop_gradient(grads)
            params = [p - inner_lr * g for p, g in zip(params, grads)]
        return loss(params, query_x, query_y)

    def meta_loss(params, *tasks):
        return jax.vmap(adapted_query_loss, in_axes=(None, 0, 0, 0, 0))(params, *tasks).mean()

    step = jax.jit(jax.value_and_grad(meta_loss))

    def meta_step():
        value, grads = jax.block_until_ready(step(params, *data))
        return [torch.from_numpy(np.array(g)) for g in grads], float(value)  # copies

    return meta_step


# -- wiring to the workloads ------------------------------------------------------------------
@functools.cache
def available(library: str) -> bool:
    """Whether `library` imports here (learn2learn is a project dependency; torchopt,
    higher and jax come with the `bench` extra)."""
    try:
        importlib.import_module(library)
    except Exception:  # missing, or built against another torch
        return False
    return True


def user_model(task, config) -> tuple[nn.Module, Callable]:
    """The nn.Module and loss a user writes for `task`'s workload."""
    if hasattr(task, "channels"):  # a conv-4 few-shot task
        return (Conv4(task.channels, config["filters"], task.image_size, config["ways"]),
                F.cross_entropy)
    return mlp(config.get("hidden", 40)), F.mse_loss


def build_reference(name: str, built, first_order: bool) -> MetaStep:
    """Reference `name` (a library: learn2learn, torchopt, higher, jax) on a built workload
    (benchmarks.workloads.BuiltWorkload): the user's module started from the workload's φ₀,
    on its device, on the same batch tensors as ours."""
    config = built.config
    if name == "jax":
        if hasattr(built.task, "channels"):
            raise ValueError("jax: a reference for the MLP workloads only")
        return jax_maml(built.phi, built.batch, config["inner_lr"], config["inner_steps"],
                        first_order)
    model, loss_fn = user_model(built.task, config)
    model = load_phi(model.to(built.batch.support_x.device), built.phi)
    common = dict(inner_lr=config["inner_lr"], inner_steps=config["inner_steps"])
    if name == "learn2learn":
        return learn2learn_maml(model, loss_fn, built.batch, first_order=first_order, **common)
    if first_order:
        raise ValueError(f"{name}: no first-order reference")
    if name == "torchopt":
        return torchopt_maml(model, loss_fn, built.batch, **common)
    if name == "higher":
        return higher_maml(model, loss_fn, built.batch, **common)
    raise KeyError(name)
