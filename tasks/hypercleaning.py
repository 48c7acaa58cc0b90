"""Data hyper-cleaning (Franceschi et al., ICML 2017, "Forward and Reverse Gradient-Based
Hyperparameter Optimization", Section 5.1), on the 8×8 handwritten digits that ship with
scikit-learn (1797 images, 10 classes).

Per seed, the digits are shuffled into a training set, a clean validation set and a clean
test set; a fraction `corruption` of the training labels is replaced by a different class
drawn uniformly. The hyperparameters
are one weight per training example, w_i = σ(φ_i); θ is a linear softmax classifier:
    inner  f(θ, φ) = 1/n Σ_i σ(φ_i) CE(θ; x_i, ỹ_i) + λ/2 ‖W‖²     (training set)
    outer  F(θ)    = CE(θ; validation set)
θ₀ = 0 and φ₀ = 0 (every weight ½). Metrics: test accuracy of the classifier trained with
the learned weights, and the F1 score of flagging example i as corrupted when w_i < ½.
An episode carries the whole problem: support = training set, query = validation set
(test set for the "test" split).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchsuite.core.contract import HYPERPARAMETER, EpisodeBatch, Task
from benchsuite.core.seeding import derive_seed
from benchsuite.core.settings import Annotated, AtLeast, Fraction

CLASSES = 10
DIGITS = 1797
"""Images in scikit-learn's digits data set."""


def f1_score(flagged: torch.Tensor, truth: torch.Tensor) -> float:
    true_positives = float((flagged & truth).sum())
    denominator = float(flagged.sum() + truth.sum())
    return 2 * true_positives / denominator if denominator else 1.0


class HyperCleaning(Task):
    name = "hypercleaning"
    kind = HYPERPARAMETER
    paper = "Franceschi et al. 2017, data hyper-cleaning"
    metric = "accuracy"
    higher_is_better = True

    @dataclass(frozen=True)
    class Settings:
        """The corruption and the cut of the digits."""

        corruption: Annotated[float, Fraction] = 0.5
        """The fraction of training labels replaced by another, uniformly drawn class."""
        train_size: Annotated[int, AtLeast(1)] = 500
        """Training digits, one weight σ(φ_i) each; the labels are corrupted here only."""
        validation_size: Annotated[int, AtLeast(1)] = 500
        """Clean validation digits (the outer loss); the rest of the 1797 are the test
        set."""
        weight_decay: Annotated[float, AtLeast(0)] = 1e-3
        """λ, the weight of λ/2 ‖W‖², which keeps the inner problem strongly convex."""

    defaults = {
        "inner_steps": 100, "inner_lr": 1.0,
        "meta_batch": 1, "meta_lr": 0.1, "meta_optimizer": "adam",
        "iterations": 500,
        "eval_inner_steps": 100,
        "test_episodes": 1, "val_episodes": 1,
    }
    quick = {"iterations": 200}

    def __init__(self, config, device):
        super().__init__(config, device)
        from sklearn.datasets import load_digits

        c = config
        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 16
        y = torch.tensor(digits.target, dtype=torch.long)
        g = torch.Generator().manual_seed(derive_seed(self.name, c["seed"], "problem"))
        order = torch.randperm(len(y), generator=g)
        train, rest = order[:c["train_size"]], order[c["train_size"]:]
        validation, test = rest[:c["validation_size"]], rest[c["validation_size"]:]
        corrupted_rows = torch.randperm(len(train), generator=g)[
            :round(c["corruption"] * len(train))]
        noisy = y[train].clone()
        shift = torch.randint(1, CLASSES, (len(corrupted_rows),), generator=g)
        noisy[corrupted_rows] = (noisy[corrupted_rows] + shift) % CLASSES
        self.corrupted = noisy != y[train]
        self.train = (x[train], noisy)
        self.validation = (x[validation], y[validation])
        self.test = (x[test], y[test])

    @classmethod
    def check_config(cls, config):
        problems = super().check_config(config)
        sizes = config["train_size"], config["validation_size"]
        if sum(sizes) > DIGITS - 1:
            problems.append(f"train_size and validation_size must leave test digits out "
                            f"of {DIGITS} (got {sizes})")
        return problems

    def init_meta_params(self, generator):
        return {"example_logits": torch.zeros(self.config["train_size"])}

    def initial_theta(self, phi):
        features = self.train[0].shape[1]
        weight = phi["example_logits"].new_zeros(CLASSES, features)
        return {"weight": weight, "bias": weight.new_zeros(CLASSES)}

    def inner_loss(self, theta, phi, x, y):
        losses = F.cross_entropy(F.linear(x, theta["weight"], theta["bias"]), y,
                                 reduction="none")
        weights = torch.sigmoid(phi["example_logits"])
        return (weights * losses).mean() + 0.5 * self.config["weight_decay"] * \
            (theta["weight"] ** 2).sum()

    def outer_loss(self, theta, phi, x, y):
        return F.cross_entropy(F.linear(x, theta["weight"], theta["bias"]), y)

    def score(self, theta, phi, x, y):
        return (F.linear(x, theta["weight"], theta["bias"]).argmax(-1) == y).float()

    def sample_batch(self, split, size, generator):
        # One fixed problem per seed: every split is that problem, scored on its own set.
        query = self.test if split == "test" else self.validation
        return EpisodeBatch(*(t.unsqueeze(0) for t in (*self.train, *query)))

    def final_metrics(self, phi):
        flagged = torch.sigmoid(phi["example_logits"].detach().cpu()) < 0.5
        return {"corrupted_f1": f1_score(flagged, self.corrupted)}
