"""MT-net (Lee & Choi, ICML 2018, "Gradient-Based Meta-Learning with Learned Layerwise
Metric and Subspace").

T-net: every layer l of the task's model computes
    h_l = σ(T_l (W_l h_l−1 + b_l))
with T_l a square matrix over the layer's output units (a 1×1 convolution for a conv
layer), shared by all tasks and meta-learned only; the task learner adapts W = θ, from
θ₀ = φ. MT-net restricts each inner step to a subspace chosen by a binary
mask M over the output units of each layer, shared by the unit's weight row and bias (the
paper's code for its experiments, `share_M`):
    θ_b,k+1 = θ_b,k − α M_b ⊙ ∇_θ f(θ_b,k; T, S_b)       k = 0 … K−1
    M_b,l,j ~ Bernoulli(σ(ζ_l,j)), one sample per task, kept for all K steps
    L(φ, T, ζ) = 1/B Σ_b F(θ_b,K; T, Q_b)
and meta-learns (φ, T, ζ) by reverse mode through the inner loop (second order). The
mask is sampled with the Gumbel-softmax relaxation over its two outcomes (logits ζ and 0,
temperature τ) and the straight-through estimator: the forward pass uses the hard sample,
gradients flow through the relaxed one. For logits (ζ, 0) the relaxed sample is
σ((ζ + log u − log(1 − u)) / τ), u ~ U(0, 1), which is what is drawn here.
Defaults as in the paper's code: T_l = I, ζ = 0, τ = 1. Test-time adaptation samples the
mask the same way, one per episode, as the paper's code does.
"""

from dataclasses import dataclass

import torch

from benchsuite.blocks.layer_transforms import LayerTransformMethod, per_layer
from benchsuite.core.contract import owned, owned_part, task_part
from benchsuite.core.functional import gradient_descent, mean_objective_gradient
from benchsuite.core.settings import Annotated, Positive

MASK_LOGITS = "mask_logit"


def straight_through_mask(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """A Bernoulli(σ(ζ)) sample in the forward pass with the gradient of its
    Gumbel-softmax relaxation."""
    u = torch.rand_like(logits).clamp(1e-12, 1 - 1e-12)
    relaxed = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)
    hard = (relaxed > 0.5).to(logits.dtype)
    return relaxed + (hard - relaxed).detach()  # exactly 0 or 1 in the forward pass


def masked_step_sizes(layers, theta, masks, step_size: float):
    """α M for every tensor of θ: each layer's mask over its output units (dimension 0)."""
    sizes = {}
    for layer, keys in enumerate(layers):
        for key in keys:
            unit_mask = masks[str(layer)].reshape(-1, *[1] * (theta[key].dim() - 1))
            sizes[key] = step_size * unit_mask
    return sizes


class MTNet(LayerTransformMethod):
    name = "mtnet"
    paper = "Lee & Choi 2018 (MT-net)"
    transform_group = "transform"  # T
    adapts_randomly = True

    @dataclass(frozen=True)
    class Settings:
        mask_temperature: Annotated[float, Positive] = 1.0
        """τ, the temperature of the masks' Gumbel-softmax relaxation."""
        mask_logit_init: float = 0.0
        """ζ's initial value for every unit (0: each unit updated with probability ½)."""

    def init_meta_params(self, task, generator):
        phi = super().init_meta_params(task, generator)
        logit = self.config["mask_logit_init"]
        return {**phi, **owned(MASK_LOGITS, per_layer(task, task.initial_theta(task_part(phi)),
                                                      lambda n: torch.full((n,), logit)))}

    def adapt(self, task, phi, support_x, support_y, steps):
        task_phi = task_part(phi)
        theta = task.initial_theta(task_phi)
        masks = {layer: straight_through_mask(logits, self.config["mask_temperature"])
                 for layer, logits in owned_part(phi, MASK_LOGITS).items()}
        step_sizes = masked_step_sizes(task.layers(theta), theta, masks, self.config["inner_lr"])
        return gradient_descent(self.transformed(task, phi), theta, task_phi, support_x,
                                support_y, steps, step_sizes)

    def meta_gradient(self, task, phi, batch):
        def task_objective(phi, support_x, support_y, query_x, query_y):
            theta = self.adapt(task, phi, support_x, support_y, self.config["inner_steps"])
            return self.transformed(task, phi).outer_loss(theta, task_part(phi), query_x,
                                                          query_y)

        return mean_objective_gradient(task_objective, phi, batch, self.config["batching"],
                                       randomness="different")
