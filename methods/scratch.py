"""Scratch floor — no meta-learning: φ₀ as initialised, adapted at test time by plain
gradient descent with a step size tuned on validation episodes.

This is the "train from scratch" / random-initialisation lower bound that few-shot papers
report beside their meta-learners (e.g. Finn, Abbeel & Levine 2017, §5.1, and Chen et al.
2019, "A Closer Look at Few-shot Classification", which shows how far such floors reach);
the leaderboard uses it as a floor: a meta-learner that does not beat it has learned
nothing usable from meta-training.

    meta-update:      none — dL/dφ is reported as 0, so φ_t = φ₀ for every t (Adam and SGD
                      both leave a parameter with zero gradient exactly where it is), and
                      the trial runs 0 iterations (Method.meta_trains is False)
    test adaptation:  θ_0 = θ₀(φ₀),  θ_k+1 = θ_k − α* ∇_θ f(θ_k, φ₀; S),  k < K
    step size:        α* = the best value of the task metric on the trial's validation
                      episodes (the same episodes as the learning curve, drawn from the
                      (task, seed, "validation") generator; never the test episodes),
                      after K = eval_inner_steps steps, over the grid `step_grid` plus
                      the task's own inner_lr. Non-finite validation scores disqualify a
                      value; ties go to the smaller step size.

α* is chosen when training ends (Method.after_training), before the test episodes are
scored; the learning curve, drawn during training, adapts with the task's inner_lr. The
chosen value is recorded as `metrics.chosen_step_size`, with the validation score of each
grid value (Method.final_metrics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchsuite.core.contract import (
    HYPERPARAMETER,
    META_INIT,
    META_REPRESENTATION,
    MetaGradient,
    Method,
    task_part,
)
from benchsuite.core.functional import gradient_descent, over_tasks
from benchsuite.core.seeding import generator

STEP_GRID = (0.01, 0.03, 0.1, 0.3, 0.4, 1.0)


class StepSizeOnValidation:
    """Mixin: a test-time step size chosen on the trial's validation episodes.

    The class using it defines `adapt_with(task, phi, sx, sy, steps, step_size)`; `adapt`
    then uses the chosen step size (the task's inner_lr until one is chosen)."""

    config: dict
    step_size: float | None = None
    validation_scores: dict[float, float]

    def candidate_step_sizes(self) -> list[float]:
        grid = {float(v) for v in self.config.get("step_grid", STEP_GRID)}
        grid.add(float(self.config["inner_lr"]))
        return sorted(grid)

    def validation_episodes(self, task):
        c = self.config
        return task.sample_batch("validation", c["val_episodes"],
                                 generator(task.name, c["seed"], "validation"))

    def validation_score(self, task, phi, episodes, step_size: float) -> float:
        """Mean over the validation episodes of the per-episode mean metric (NaN if any
        episode is not finite)."""
        steps = self.config["eval_inner_steps"]

        def score_one(phi, sx, sy, qx, qy):
            theta = self.adapt_with(task, phi, sx, sy, steps, step_size)
            return self.score(task, phi, theta, qx, qy)

        randomness = "different" if self.adapts_randomly else "error"
        chunk = self.config.get("eval_chunk", 100)
        scores = []
        for start in range(0, len(episodes), chunk):
            part = episodes.slice(start, start + chunk)
            scores.append(over_tasks(score_one, self.config["batching"], randomness)(
                phi, *part.tensors()).detach().flatten(1).mean(dim=1))
        values = torch.cat(scores)
        return float(values.mean()) if bool(torch.isfinite(values).all()) else math.nan

    def choose_step_size(self, task, phi) -> float:
        device = next(iter(phi.values())).device
        phi = {k: v.detach() for k, v in phi.items()}
        episodes = self.validation_episodes(task).to(device)
        self.validation_scores = {lr: self.validation_score(task, phi, episodes, lr)
                                  for lr in self.candidate_step_sizes()}
        sign = 1.0 if task.higher_is_better else -1.0
        # scores rounded to 6 digits, so that float noise does not break a tie
        finite = [(round(sign * s, 6), -lr, lr) for lr, s in self.validation_scores.items()
                  if math.isfinite(s)]
        self.step_size = max(finite)[2] if finite else float(self.config["inner_lr"])
        return self.step_size

    def current_step_size(self) -> float:
        return self.step_size if self.step_size is not None else float(self.config["inner_lr"])

    def after_training(self, task, phi) -> None:
        self.choose_step_size(task, phi)

    def final_metrics(self, task, phi) -> dict[str, float]:
        out = {"chosen_step_size": self.current_step_size()}
        for lr, score in sorted(getattr(self, "validation_scores", {}).items()):
            out[f"val_{task.metric}_at_step_size_{lr:g}"] = score
        return out


class Scratch(StepSizeOnValidation, Method):
    name = "scratch"
    paper = "floor: untrained φ₀, gradient descent with a validation-tuned step size"
    supports = frozenset({META_INIT, META_REPRESENTATION, HYPERPARAMETER})
    is_floor = True  # a baseline the leaderboard sets every method against
    meta_trains = False  # φ stays φ₀: the trial runs 0 iterations

    @dataclass(frozen=True)
    class Settings:
        """The test-time step-size grid. The engine's inner step α = inner_lr is reused
        twice: it is one point of the grid (the task's own step size), and it adapts the
        learning curve drawn before α* is chosen (the module docstring's derivation);
        α* itself is not a config key, it is chosen on validation episodes."""

        step_grid: tuple[float, ...] = STEP_GRID
        """Test-time step sizes tried on the validation episodes (with the task's
        inner_lr); the best is used on the test episodes."""

    def adapt_with(self, task, phi, support_x, support_y, steps, step_size):
        tp = task_part(phi)
        return gradient_descent(task, task.initial_theta(tp), tp, support_x, support_y,
                                steps, step_size)

    def adapt(self, task, phi, support_x, support_y, steps):
        return self.adapt_with(task, phi, support_x, support_y, steps,
                               self.current_step_size())

    def meta_gradient(self, task, phi, batch):
        """Zero for every meta-parameter; the reported outer loss is the query loss after
        the test-time adaptation (K = inner_steps), so the learning curve stays readable."""
        steps = self.config["inner_steps"]

        def query_loss(phi, sx, sy, qx, qy):
            theta = self.adapt(task, phi, sx, sy, steps)
            return task.outer_loss(theta, task_part(phi), qx, qy)

        detached = {k: v.detach() for k, v in phi.items()}
        losses = over_tasks(query_loss, self.config["batching"])(detached, *batch.tensors())
        return MetaGradient({k: torch.zeros_like(v) for k, v in phi.items()},
                            losses.mean())
