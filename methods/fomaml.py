"""First-order MAML (Finn, Abbeel & Levine, ICML 2017, Section 5.2).

The inner loop is MAML's, θ_k+1 = θ_k − α ∇_θ f(θ_k, φ; S), but every inner gradient is
treated as a constant, so dθ_K/dθ₀ ≈ I and the second-order terms vanish:
    dL/dφ ≈ (∂θ₀/∂φ)ᵀ ∇_θ F(θ_K, φ; Q) + ∂F/∂φ(θ_K, φ; Q)
For a meta-initialisation (θ₀ = φ) this is ∇_θ F evaluated at the adapted parameters.
The code is MAML's (methods/maml.py) with the inner gradients detached.
"""

from benchsuite.contract import META_INIT, META_REPRESENTATION
from methods.maml import MAML


class FOMAML(MAML):
    name = "fomaml"
    aliases = ()
    paper = "Finn et al. 2017, first-order approximation (Section 5.2)"
    supports = frozenset({META_INIT, META_REPRESENTATION})
    first_order = True
