"""Omniglot as a hyper-representation problem (Franceschi et al., ICML 2018, "Bilevel
Programming for Hyperparameter Optimization and Meta-Learning", Section 4.2): φ is the
conv-4 backbone shared across episodes, θ a linear head fitted per episode from zero by
gradient descent on the support set. Same data, class split and episodes as `omniglot`
(tasks/omniglot.py); inner loop of 5 steps with α = 0.4 (ours: the paper's inner solver
and step count are not reproduced here).
"""

from benchsuite.blocks.fewshot import HyperRepresentation
from benchsuite.tasks.omniglot import Omniglot


class OmniglotRepresentation(HyperRepresentation, Omniglot):
    name = "omniglot-rep"
    paper = "Franceschi et al. 2018 (hyper-representation), Omniglot"
    defaults = {**Omniglot.defaults, "inner_steps": 5, "inner_lr": 0.4, "eval_inner_steps": 5}
