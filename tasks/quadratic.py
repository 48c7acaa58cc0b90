"""A synthetic bilevel problem with a strongly convex quadratic inner level and a closed-form
hypergradient — the standard sanity check for hypergradient approximations (cf. Pedregosa
2016; Grazzi et al. 2020, "On the Iteration Complexity of Hypergradient Computation").

Each of the `instances` problems t (drawn once per seed) has
  inner  f_t(θ, φ) = ½ θᵀ A_t θ − θᵀ (φ + c_t),        A_t ≻ 0 with spectrum in [μ, L]
  outer  F_t(θ, φ) = ½ (θ − b_t)ᵀ C_t (θ − b_t) + ½ ρ ‖φ‖²
so θ*_t(φ) = A_t⁻¹ (φ + c_t) and, by the implicit function theorem,
  dF_t/dφ = ρ φ + A_t⁻¹ C_t (θ*_t − b_t).
The hyperparameter φ is shared by all instances; the meta-objective is their mean. θ₀ = 0.
An episode carries its own problem: support = (A_t, c_t), query = (C_t, b_t).
The metric is the outer loss F after the method's inner solve.
"""

from dataclasses import dataclass

import torch

from benchsuite.core.contract import HYPERPARAMETER, EpisodeBatch, Task
from benchsuite.core.seeding import derive_seed
from benchsuite.core.settings import Annotated, AtLeast, Positive


def random_spd(dim: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    spectrum = low + (high - low) * torch.rand(dim, generator=generator, dtype=torch.float64)
    spectrum[0], spectrum[-1] = low, high  # pin the condition number
    return q @ torch.diag(spectrum) @ q.T


class Quadratic(Task):
    name = "quadratic"
    kind = HYPERPARAMETER
    paper = "synthetic quadratic bilevel problem with closed-form hypergradient"
    metric = "outer_loss"
    higher_is_better = False

    @dataclass(frozen=True)
    class Settings:
        """The size and conditioning of the problems."""

        dim: Annotated[int, AtLeast(1)] = 20
        """The dimension of θ and φ."""
        instances: Annotated[int, AtLeast(1)] = 4
        """Problems t drawn per seed; the meta-objective is their mean."""
        mu: Annotated[float, Positive] = 1.0
        """μ, the smallest eigenvalue of every inner Hessian A_t."""
        L: Annotated[float, Positive] = 5.0
        """L, the largest eigenvalue of every inner Hessian A_t (μ ≤ L)."""
        rho: Annotated[float, AtLeast(0)] = 0.01
        """ρ, the weight of the outer regulariser ½ ρ ‖φ‖²."""

    defaults = {
        "inner_steps": 100, "inner_lr": 0.2,   # 2 / (μ + L) would be optimal; 1/L is safe
        "meta_batch": 4, "meta_lr": 0.05, "meta_optimizer": "adam",
        "iterations": 200,
        "eval_inner_steps": 100,
        "test_episodes": 4, "val_episodes": 4,
    }
    quick = {}

    def __init__(self, config, device):
        super().__init__(config, device)
        c = config
        g = torch.Generator().manual_seed(derive_seed(self.name, c["seed"], "problem"))
        n, d = c["instances"], c["dim"]
        self.problems = EpisodeBatch(
            torch.stack([random_spd(d, c["mu"], c["L"], g) for _ in range(n)]),
            torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.stack([random_spd(d, 0.5, 2.0, g) for _ in range(n)]),
            torch.randn(n, d, generator=g, dtype=torch.float64),
        )

    @classmethod
    def check_config(cls, config):
        problems = super().check_config(config)
        if not config["mu"] <= config["L"]:
            problems.append(f"need mu <= L (got mu={config['mu']}, L={config['L']})")
        return problems

    def init_meta_params(self, generator):
        return {"phi": torch.randn(self.config["dim"], generator=generator, dtype=torch.float64)}

    def initial_theta(self, phi):
        return {"theta": torch.zeros_like(phi["phi"])}

    def inner_loss(self, theta, phi, a, c):
        t = theta["theta"]
        return 0.5 * t @ a @ t - t @ (phi["phi"] + c)

    def outer_loss(self, theta, phi, cmat, b):
        r = theta["theta"] - b
        return 0.5 * r @ cmat @ r + 0.5 * self.config["rho"] * phi["phi"] @ phi["phi"]

    def score(self, theta, phi, x, y):
        return self.outer_loss(theta, phi, x, y).reshape(1)

    def sample_batch(self, split, size, generator):
        # A hyperparameter problem has a fixed set of instances: every split is that set.
        return self.problems

    def exact_hypergradient(self, phi, batch):
        a, c, cmat, b = batch.tensors()
        theta_star = torch.linalg.solve(a, (phi["phi"] + c).unsqueeze(-1)).squeeze(-1)
        residual = (cmat @ (theta_star - b).unsqueeze(-1))
        implicit = torch.linalg.solve(a, residual).squeeze(-1)  # A symmetric: A⁻ᵀ = A⁻¹
        return {"phi": self.config["rho"] * phi["phi"] + implicit.mean(0)}
