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

import torch
import torch.nn.functional as F

from benchsuite.contract import HYPERPARAMETER, EpisodeBatch, Task
from benchsuite.seeding import derive_seed

CLASSES = 10


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
    defaults = {
        "corruption": 0.5,            # fraction of training labels replaced
        "train_size": 500, "validation_size": 500,   # the rest of the 1797 digits: test
        "weight_decay": 1e-3,         # λ, keeps the inner problem strongly convex
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
        if not 0 <= config["corruption"] <= 1:
            problems.append(f"corruption must be in [0, 1] (got {config['corruption']})")
        sizes = config["train_size"], config["validation_size"]
        if min(sizes) < 1 or sum(sizes) > 1797 - 1:
            problems.append(f"train_size and validation_size must be positive and leave "
                            f"test digits out of 1797 (got {sizes})")
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
