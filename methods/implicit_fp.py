"""Approximate implicit differentiation by fixed-point iteration — AID-FP of Grazzi, Franceschi,
Pontil & Salzo, ICML 2020, "On the Iteration Complexity of Hypergradient Computation"
(hypertorch's `fixed_point`).

The inner solver is the fixed-point map Φ(θ, φ) = θ − α ∇_θ f(θ, φ), run T times from θ₀.
At its fixed point θ*, dF/dφ = ∂F/∂φ + (∂Φ/∂φ)ᵀ w with w the solution of
    w = (∂Φ/∂θ)ᵀ w + ∇_θ F(θ*, φ),
found by J fixed-point iterations from w₀ = 0 (the "fixed-point method" of AID). Since
∂Φ/∂θ = I − α ∂²f/∂θ² and ∂Φ/∂φ = −α ∂²f/∂φ∂θ, the code iterates v = α w, the solution
of (∂²f/∂θ²) v = ∇_θ F, so that the common implicit assembly
dF/dφ = ∂F/∂φ − (∂²f/∂φ∂θ)ᵀ v applies:
    v ← v − α ((∂²f/∂θ²) v − ∇_θ F(θ*, φ)),     v₀ = 0.
With w₀ = 0 its J-th iterate equals the J-term Neumann sum of `implicit-neumann` in exact
arithmetic (Grazzi et al. note the equivalence); both are listed because the libraries the
suite mirrors offer both, and the tests use each as a check of the other.
"""

from dataclasses import dataclass

import torch

from benchsuite.core.functional import fixed_point_iteration, tree_add
from benchsuite.core.settings import Annotated, AtLeast
from benchsuite.methods.implicit_cg import ImplicitCG


class ImplicitFP(ImplicitCG):
    name = "implicit-fp"
    paper = "Grazzi et al. 2020 (AID-FP, fixed-point iteration)"
    accuracy_knob = "fp_iterations"

    @dataclass(frozen=True)
    class Settings:
        """The adjoint iterations. Their step is the engine's inner step α = inner_lr:
        AID-FP differentiates the inner solver's own map Φ(θ) = θ − α ∇_θ f (Grazzi et
        al. 2020, Section 3), so the adjoint's step is the inner one by derivation."""

        fp_iterations: Annotated[int, AtLeast(1)] = 10
        """J, the fixed-point iterations of the adjoint solve."""

    def solve(self, apply_hessian, rhs):
        step = self.config["inner_lr"]

        def adjoint_step(v):
            return tree_add(v, tree_add(apply_hessian(v), rhs, -1.0), -step)

        start = {k: torch.zeros_like(r) for k, r in rhs.items()}
        return fixed_point_iteration(adjoint_step, start, self.config["fp_iterations"])
