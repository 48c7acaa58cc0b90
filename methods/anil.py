"""ANIL — Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, ICLR 2020, "Rapid Learning
or Feature Reuse? Towards Understanding the Effectiveness of MAML").

MAML (methods/maml.py) with the inner loop restricted to the head: θ = (θ_body, θ_head),
both initialised from φ, and for each task b
    θ_head,b,k+1 = θ_head,b,k − α ∇_θ_head f((θ_body, θ_head,b,k), φ; S_b)   k = 0 … K−1
    θ_body,b,k   = θ_body                    (the body is not adapted)
    L(φ) = 1/B Σ_b F((θ_body, θ_head,b,K), φ; Q_b)
dL/dφ is MAML's exact reverse-mode hypergradient through the K head steps (second order);
the body is meta-learned through both its direct effect on F and its effect on the head's
inner gradients. The head is the task's `head_keys`.
"""

from benchsuite.core.contract import META_INIT
from benchsuite.core.functional import gradient_descent
from benchsuite.methods.maml import MAML


class ANIL(MAML):
    name = "anil"
    aliases = ()
    paper = "Raghu et al. 2020 (ANIL)"
    supports = frozenset({META_INIT})

    @classmethod
    def incompatibility(cls, task):
        if not task.head_keys:
            return f"anil adapts only the head, and {task.name} names no head_keys"
        return super().incompatibility(task)

    def adapt(self, task, phi, support_x, support_y, steps):
        return gradient_descent(task, task.initial_theta(phi), phi, support_x, support_y,
                                steps, self.config["inner_lr"], first_order=self.first_order,
                                keys=task.head_keys)
