"""MAML through learn2learn (Arnold et al. 2020, "learn2learn: A Library for Meta-Learning
Research"), as a reference implementation of Finn et al. 2017 to compare speed with.

The algorithm is `maml`'s — K steps θ ← θ − α ∇_θ f(θ; S), then ∇_φ of the mean query loss
through them — but executed the way learn2learn users write it: for each task of the
meta-batch in a Python loop, `learner = MAML(module).clone()`, `learner.adapt(loss)` K
times, query loss accumulated, one `backward()`. With `first_order` it is learn2learn's
first-order MAML. The leaderboard row therefore shows what batching buys.
"""

from dataclasses import dataclass

import torch
from torch import nn

from benchsuite.blocks.compat import learn2learn as l2l
from benchsuite.core.contract import META_INIT, MetaGradient, Method


class TaskParameters(nn.Module):
    """φ as an nn.Module, so learn2learn can clone and update it. Dots are not allowed in
    parameter names, hence the renaming."""

    def __init__(self, phi):
        super().__init__()
        self.names = list(phi)
        self.values = nn.ParameterList(nn.Parameter(v.detach().clone()) for v in phi.values())

    def as_dict(self):
        return dict(zip(self.names, self.values))


class Learn2LearnMAML(Method):
    name = "l2l-maml"
    paper = "Finn et al. 2017 (MAML), via learn2learn.algorithms.MAML"
    implementation_of = "maml"
    supports = frozenset({META_INIT})

    @dataclass(frozen=True)
    class Settings:
        first_order: bool = False
        """learn2learn.algorithms.MAML's `first_order` flag (false: second-order MAML)."""

    # learn2learn's autograd cannot run under vmap; one task per chunk is the per-task
    # backward() of learn2learn's own examples (the engine accumulates the tasks)
    task_overrides = {"batching": "loop", "meta_chunk": 1, "eval_chunk": 1}

    def meta_gradient(self, task, phi, batch):
        module = TaskParameters(phi)
        maml = l2l.algorithms.MAML(module, lr=self.config["inner_lr"],
                                   first_order=self.config["first_order"])
        meta_loss = 0.0
        for t in range(len(batch)):
            learner = maml.clone()
            for _ in range(self.config["inner_steps"]):
                learner.adapt(task.inner_loss(learner.module.as_dict(), phi,
                                              batch.support_x[t], batch.support_y[t]))
            meta_loss = meta_loss + task.outer_loss(learner.module.as_dict(), phi,
                                                    batch.query_x[t], batch.query_y[t])
        meta_loss = meta_loss / len(batch)
        meta_loss.backward()
        grads = {name: p.grad for name, p in zip(module.names, module.values)}
        return MetaGradient(grads=grads, outer_loss=float(meta_loss.detach()))

    def adapt(self, task, phi, support_x, support_y, steps):
        with torch.enable_grad():  # learn2learn differentiates with autograd, even at test time
            learner = l2l.algorithms.MAML(TaskParameters(phi), lr=self.config["inner_lr"],
                                          first_order=True).clone()
            for _ in range(steps):
                learner.adapt(task.inner_loss(learner.module.as_dict(), phi, support_x,
                                              support_y))
        return {k: v.detach() for k, v in learner.module.as_dict().items()}
