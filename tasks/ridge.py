"""Ridge regression with per-feature regularisation learnt by cross-validation — the classic
hyperparameter-optimisation bilevel problem (Pedregosa 2016, HOAG; Grazzi et al. 2020),
on the diabetes data set that ships with scikit-learn (442 patients, 10 features; no
download) plus `noise_features` seeded Gaussian columns that carry no signal, so that
per-feature regularisation has something to learn.

Rows are shuffled per seed; `test_rows` are held out, the rest is cut into `folds` equal
folds. Features and target are standardised with the statistics of the non-test rows.
Fold t gives one episode: support = the other folds, query = fold t. With λ_j = exp(φ_j),
  inner  f_t(θ, φ) = ½ mean_S (xᵀθ − y)² + ½ Σ_j λ_j θ_j²
  outer  F_t(θ, φ) = mean_Q (xᵀθ − y)²                  (validation MSE)
so, with H_t = X_Sᵀ X_S / n_S + diag(λ),
  θ*_t = H_t⁻¹ X_Sᵀ y_S / n_S,    dF_t/dφ = −λ ⊙ θ*_t ⊙ H_t⁻¹ ∇_θ F_t(θ*_t)
(implicit function theorem; ∂²f/∂φ∂θ = diag(λ ⊙ θ)): one linear solve per fold. The
meta-objective is the mean over folds (K-fold cross-validation). The test episode fits on
all non-test rows and is scored by squared error on the held-out rows. θ₀ = 0, φ₀ = 0.
Gradient descent on f is stable while inner_lr < 2 / (λ_max(XᵀX/n) + max λ); the default
meta step size and iteration count keep max λ below e² ≈ 7.4 (λ_max(XᵀX/n) ≈ 5 here).
"""

from dataclasses import dataclass

import torch

from benchsuite.core.contract import HYPERPARAMETER, EpisodeBatch, Task
from benchsuite.core.seeding import derive_seed
from benchsuite.core.settings import Annotated, AtLeast

ROWS = 442
"""Patients in scikit-learn's diabetes data set."""


class Ridge(Task):
    name = "ridge"
    kind = HYPERPARAMETER
    paper = "per-feature ridge regularisation by cross-validation (Pedregosa 2016), diabetes data"
    metric = "mse"
    higher_is_better = False

    @dataclass(frozen=True)
    class Settings:
        """The features and the cut of the rows."""

        noise_features: Annotated[int, AtLeast(0)] = 20
        """Seeded Gaussian columns appended to the 10 real features; they carry no
        signal, so per-feature regularisation has something to learn."""
        test_rows: Annotated[int, AtLeast(1)] = 82
        """Rows held out for the test episode; the rest are cut into the folds."""
        folds: Annotated[int, AtLeast(2)] = 4
        """Cross-validation folds, one episode each (the meta-batch)."""

    defaults = {
        "inner_steps": 100, "inner_lr": 0.15,
        "meta_batch": 4, "meta_lr": 0.02, "meta_optimizer": "adam",
        "iterations": 100,
        "eval_inner_steps": 100,
        "test_episodes": 1, "val_episodes": 4,
    }
    quick = {}

    def __init__(self, config, device):
        super().__init__(config, device)
        from sklearn.datasets import load_diabetes

        c = config
        g = torch.Generator().manual_seed(derive_seed(self.name, c["seed"], "data"))
        x, y = (torch.as_tensor(a, dtype=torch.float64) for a in load_diabetes(return_X_y=True))
        noise = torch.randn(x.shape[0], c["noise_features"], generator=g, dtype=torch.float64)
        x = torch.cat([x, noise], dim=1)
        order = torch.randperm(x.shape[0], generator=g)
        test, rest = order[:c["test_rows"]], order[c["test_rows"]:]
        mean, std = x[rest].mean(0), x[rest].std(0)
        x = (x - mean) / std
        y = (y - y[rest].mean()) / y[rest].std()
        fold_size = len(rest) // c["folds"]
        folds = rest[:fold_size * c["folds"]].reshape(c["folds"], fold_size)
        others = torch.stack([torch.cat([folds[j] for j in range(c["folds"]) if j != t])
                              for t in range(c["folds"])])
        self.cross_validation = EpisodeBatch(x[others], y[others], x[folds], y[folds])
        self.holdout = EpisodeBatch(x[rest][None], y[rest][None], x[test][None], y[test][None])

    @classmethod
    def check_config(cls, config):
        problems = super().check_config(config)
        # every fold needs at least two rows (a standard deviation, a support set)
        if config["test_rows"] > ROWS - 2 * config["folds"]:
            problems.append(f"test_rows must be at most {ROWS - 2 * config['folds']} "
                            f"(the data set has {ROWS} rows; got {config['test_rows']})")
        return problems

    def features(self) -> int:
        return 10 + self.config["noise_features"]

    def init_meta_params(self, generator):
        return {"log_reg": torch.zeros(self.features(), dtype=torch.float64)}

    def initial_theta(self, phi):
        return {"weights": torch.zeros_like(phi["log_reg"])}

    def inner_loss(self, theta, phi, x, y):
        w = theta["weights"]
        return 0.5 * ((x @ w - y) ** 2).mean() + 0.5 * (phi["log_reg"].exp() * w**2).sum()

    def outer_loss(self, theta, phi, x, y):
        return ((x @ theta["weights"] - y) ** 2).mean()

    def score(self, theta, phi, x, y):
        return (x @ theta["weights"] - y) ** 2

    def sample_batch(self, split, size, generator):
        # The folds are fixed by the seed: training and validation both see all of them.
        return self.holdout if split == "test" else self.cross_validation

    def exact_hypergradient(self, phi, batch):
        xs, ys, xq, yq = batch.tensors()
        reg = phi["log_reg"].exp()
        hessian = xs.transpose(1, 2) @ xs / xs.shape[1] + torch.diag(reg)
        theta_star = torch.linalg.solve(hessian, (xs.transpose(1, 2) @ ys.unsqueeze(-1))
                                        / xs.shape[1])
        outer_grad = 2 * xq.transpose(1, 2) @ (xq @ theta_star - yq.unsqueeze(-1)) / xq.shape[1]
        v = torch.linalg.solve(hessian, outer_grad)  # H symmetric
        return {"log_reg": -(reg * (theta_star * v).squeeze(-1)).mean(0)}
