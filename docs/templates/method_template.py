"""TEMPLATE method — copy this file to methods/<your_method>.py and edit it.

This docstring is the method's documentation: name the paper and write out the update the
file implements, with the symbols of the contract (benchsuite/core/contract.py):

    θ_0 = θ₀(φ)
    θ_k+1 = θ_k − α ∇_θ f(θ_k, φ; S)            k = 0 … K−1   (inner loop, support S)
    L(φ) = 1/B Σ_b F(θ_b,K, φ; Q_b)                           (outer loss, query Q)
    dL/dφ ≈ ∇_θ F(θ_K, φ; Q)                    (first order: inner gradients held constant)

What is below is a complete, working method (first-order gradient-based meta-learning on
meta-initialisation problems, written with a plain loop over the tasks of a meta-batch) so
that the copy runs before you change anything:

    benchsuite run --plugins docs/templates --methods template-method --tasks sinusoid \
        --iterations 20

This file lives in docs/templates/, which the registry does not search (it loads methods/,
tasks/ and the folders given with --plugins), so the template is never part of a grid.
"""

from dataclasses import dataclass

import torch

from benchsuite.core.contract import META_INIT, MetaGradient, Method, task_part
from benchsuite.core.functional import gradient_descent
from benchsuite.core.settings import Annotated, AtLeast


class TemplateMethod(Method):
    # The registry name (`--methods template-method`); aliases are further names.
    name = "template-method"
    aliases = ()
    paper = "Author et al. YEAR, the update of Section N"
    # The problem kinds the update applies to: META_INIT, META_REPRESENTATION and/or
    # HYPERPARAMETER. A pair outside them is recorded as n/a, never run.
    supports = frozenset({META_INIT})
    @dataclass(frozen=True)
    class Settings:
        """The method's own config keys, with the paper's defaults: each field's type is
        checked at planning (`Annotated[..., Positive | AtLeast(n) | Fraction]` adds a
        range, `Literal["a", "b"]` a choice), and the string under it is what
        `benchsuite list --settings template-method` shows. `--set
        template-method.key=value` overrides one; read them from self.config. A key
        must not repeat one of the task's or the runner's."""

        theta_clip: Annotated[float, AtLeast(0)] = 0.0
        """Clip the adapted parameters to [−c, c]; 0 clips nothing."""

    # Task-level keys the paper fixes (they override the task's defaults), e.g.
    # {"meta_optimizer": "sgd"}. Leave empty to follow each task's protocol.
    task_overrides = {}
    # The config key that trades hypergradient accuracy for time, for `benchsuite sweep`.
    accuracy_knob = None

    def adapt(self, task, phi, support_x, support_y, steps):
        """θ adapted on one task's support set, as the method adapts at test time."""
        theta = gradient_descent(task, task.initial_theta(phi), phi, support_x, support_y,
                                 steps, self.config["inner_lr"], first_order=True)
        limit = self.config["theta_clip"]
        if limit > 0:  # an example of reading one of the method's own hyperparameters
            theta = {k: v.clamp(-limit, limit) for k, v in theta.items()}
        return theta

    def meta_gradient(self, task, phi, batch):
        """dL/dφ of the meta-batch's mean outer loss, and that loss."""
        grads = {k: torch.zeros_like(v) for k, v in phi.items()}
        total = 0.0
        for b in range(len(batch)):  # one task at a time; see methods/maml.py for vmap
            theta = self.adapt(task, phi, batch.support_x[b], batch.support_y[b],
                               self.config["inner_steps"])
            theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
            loss = task.outer_loss(theta, task_part(phi), batch.query_x[b], batch.query_y[b])
            # First order: the gradient at the adapted θ is the gradient for φ = θ₀.
            for key, g in zip(theta, torch.autograd.grad(loss, list(theta.values()))):
                grads[key] += g / len(batch)
            total += float(loss.detach()) / len(batch)
        return MetaGradient(grads=grads, outer_loss=total)
