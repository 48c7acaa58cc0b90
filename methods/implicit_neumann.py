"""Approximate implicit differentiation with a truncated Neumann series (Lorraine, Vicol &
Duvenaud, AISTATS 2020, "Optimizing Millions of Hyperparameters by Implicit
Differentiation", Algorithm 3).

As `implicit-cg` (inner gradient descent to θ* ≈ θ_T, then dF/dφ ≈ ∂F/∂φ − (∂²f/∂φ∂θ)ᵀ v),
but the inverse Hessian is replaced by its Neumann series with the inner step size α:
    (∂²f/∂θ²)⁻¹ ≈ α Σ_{j=0..J−1} (I − α ∂²f/∂θ²)ʲ,      v = that applied to ∇_θ F(θ*, φ)
(Algorithm 3: p ← p − α H p; v ← v + α p). This equals differentiating J steps of the inner
gradient descent unrolled at θ* (as Lorraine et al. point out), and converges geometrically
when α < 2 / λ_max(∂²f/∂θ²).
"""

from dataclasses import dataclass

from benchsuite.core.functional import neumann_series
from benchsuite.core.settings import Annotated, AtLeast
from benchsuite.methods.implicit_cg import ImplicitCG


class ImplicitNeumann(ImplicitCG):
    name = "implicit-neumann"
    paper = "Lorraine et al. 2020 (IFT with Neumann series)"
    accuracy_knob = "neumann_terms"

    @dataclass(frozen=True)
    class Settings:
        """The series length. Its step is the engine's inner step α = inner_lr, not a key
        of its own: Lorraine et al.'s series (Algorithm 3) is the J-step unrolled inner
        gradient descent at θ*, whose step is α; no source tunes it separately."""

        neumann_terms: Annotated[int, AtLeast(1)] = 10
        """J, the terms of the truncated Neumann series."""

    def solve(self, apply_hessian, rhs):
        return neumann_series(apply_hessian, rhs, self.config["neumann_terms"],
                              self.config["inner_lr"])
