"""Sinusoid regression (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", Section 5.1 and Appendix A.1).

A task is y = A sin(x − b) with amplitude A ~ U[0.1, 5], phase b ~ U[0, π]; inputs
x ~ U[−5, 5]. The model is an MLP 1-40-40-1 with ReLU; the loss is the mean squared error
(benchsuite/blocks/regression.py). Protocol: K = 10 support points, one inner gradient step with
α = 0.01, meta-batch 25, Adam with β = 1e-3, 70,000 meta-iterations. At test time the
model is adapted on K points and scored by MSE on held-out points of the same sine after
1, 5 and 10 steps.
"""

import math
from dataclasses import dataclass

import torch

from benchsuite.blocks.regression import MLPRegression
from benchsuite.core.contract import EpisodeBatch
from benchsuite.core.settings import Annotated, AtLeast


class Sinusoid(MLPRegression):
    name = "sinusoid"
    paper = "Finn et al. 2017 (MAML), sinusoid regression"

    @dataclass(frozen=True)
    class Settings:
        """The sines and points of an episode, and the network's width."""

        shots: Annotated[int, AtLeast(1)] = 10
        """K, the support points of a training task."""
        query: Annotated[int, AtLeast(1)] = 10
        """Query points of a training task (the outer loss)."""
        test_shots: Annotated[int, AtLeast(1)] = 10
        """Support points of a test episode."""
        test_query: Annotated[int, AtLeast(1)] = 100
        """Scored points of a test episode."""
        amplitude_min: float = 0.1
        """Lower end of the amplitude A ~ U[amplitude_min, amplitude_max]."""
        amplitude_max: float = 5.0
        """Upper end of the amplitude A."""
        phase_min: float = 0.0
        """Lower end of the phase b ~ U[phase_min, phase_max], in radians."""
        phase_max: float = math.pi
        """Upper end of the phase b, in radians."""
        x_min: float = -5.0
        """Lower end of the inputs x ~ U[x_min, x_max]."""
        x_max: float = 5.0
        """Upper end of the inputs x."""
        hidden: Annotated[int, AtLeast(1)] = 40
        """Units in each of the MLP's two hidden layers."""

    defaults = {
        "inner_steps": 1, "inner_lr": 0.01,
        "meta_batch": 25, "meta_lr": 1e-3, "meta_optimizer": "adam",
        "iterations": 70000,
        "eval_inner_steps": 1, "eval_steps": (1, 5, 10),
    }
    quick = {"iterations": 2000}

    def sample_batch(self, split, size, generator):
        c = self.config
        shots, query = ((c["shots"], c["query"]) if split == "train"
                        else (c["test_shots"], c["test_query"]))
        amplitude = c["amplitude_min"] + (c["amplitude_max"] - c["amplitude_min"]) * torch.rand(
            size, 1, 1, generator=generator)
        phase = c["phase_min"] + (c["phase_max"] - c["phase_min"]) * torch.rand(
            size, 1, 1, generator=generator)
        x = c["x_min"] + (c["x_max"] - c["x_min"]) * torch.rand(
            size, shots + query, 1, generator=generator)
        y = amplitude * torch.sin(x - phase)
        return EpisodeBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
