"""The bilevel contract between tasks and methods.

A *task* defines a bilevel problem: meta-parameters φ, task parameters θ with an initial
value θ₀(φ), an inner (lower-level) loss f(θ, φ; support) and an outer (upper-level) loss
F(θ, φ; query), how episodes are sampled, and how a test episode is scored.

A *method* defines how the hypergradient dF/dφ is obtained: it adapts θ from φ on the
support set and returns the gradient for φ (plus its own extra meta-parameters, if it has
any). Methods never look at a task's data layout; tasks never know which method runs.

Both are plugins: one class per file in `methods/` and `tasks/`, found by the registry. The
engine (runner, trial, report) talks to them only through the classes below and the values
of benchsuite.core.structures, which this module exports for plugins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from benchsuite.core import settings
from benchsuite.core.functional import gradient_descent
from benchsuite.core.structures import (
    OWNED_SEPARATOR,
    EpisodeBatch,
    LayerTransforms,
    MetaGradient,
    Params,
    owned,
    owned_part,
    task_part,
)

__all__ = ["HYPERPARAMETER", "META_INIT", "META_REPRESENTATION", "OWNED_SEPARATOR",
           "PROBLEM_KINDS", "DataMissing", "EpisodeBatch", "LayerTransforms", "MetaGradient",
           "Method", "Params", "Task", "owned", "owned_part", "task_part"]

META_INIT = "meta-initialisation"
META_REPRESENTATION = "meta-representation"
HYPERPARAMETER = "hyperparameter"
PROBLEM_KINDS = (META_INIT, META_REPRESENTATION, HYPERPARAMETER)


class DataMissing(Exception):
    """A task's data is not on disk (and could not be fetched). The message says what to
    put where."""


class Task:
    """A bilevel problem. Subclasses set the class attributes and implement the methods.

    Class attributes:
      name: registry name, e.g. "sinusoid".
      kind: one of PROBLEM_KINDS.
      paper: where the protocol comes from.
      metric: name of the evaluation metric ("accuracy", "mse", "outer_loss").
      higher_is_better: direction of `metric`.
      defaults: the paper's protocol (ways, shots, inner steps and step size, meta-batch,
        iterations, meta learning rate, ...). Every key is overridable with `--set`, and
        declared once: the engine's keys in benchsuite.config.Settings, the task's own in
        its `Settings`.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    paper: ClassVar[str] = ""
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    defaults: ClassVar[dict[str, Any]] = {}
    quick: ClassVar[dict[str, Any]] = {}
    """The CPU-sized budget (`--budget quick`, the default): settings, usually a smaller
    `iterations`, that replace the paper's defaults."""
    declared_settings: ClassVar[tuple[settings.Setting, ...]] = ()
    """The keys of the task's typed `Settings` (benchsuite.core.settings), set when the class
    is defined; their defaults join `defaults`."""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        settings.adopt(cls, "defaults")

    def __init__(self, config: Mapping[str, Any], device: torch.device):
        self.config = config
        self.device = device

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> list[str]:
        """Problems across keys of a resolved config, one line each (e.g. more shots than
        a split holds), that no single key's declaration can state. Each key's own type
        and range are checked from its Settings before this is called."""
        return []

    # -- parameters -------------------------------------------------------------------
    def init_meta_params(self, generator: torch.Generator) -> Params:
        """φ₀, drawn from `generator` (the same for every method on a given seed)."""
        raise NotImplementedError

    def initial_theta(self, phi: Params) -> Params:
        """θ₀(φ), differentiable in φ. Meta-initialisation tasks return φ's model
        parameters; other kinds return constants (a zero head, zero weights)."""
        raise NotImplementedError

    head_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of θ that form the final (classifier/regression) layer, for head-only inner
    loops (ANIL)."""

    layer_transforms: ClassVar[bool] = False
    """Whether θ's model takes per-layer transforms (MT-net, WarpGrad): if so, `layers`
    groups θ by layer and `inner_loss`, `outer_loss` and `score` take a keyword argument
    `transforms` (LayerTransforms, one function per layer; None for the plain model)."""

    def layers(self, theta: Params) -> list[tuple[str, ...]]:
        """θ's keys grouped by layer in forward order, weight first; every tensor of a
        layer has the layer's output units on dimension 0 (only with `layer_transforms`)."""
        raise NotImplementedError

    # -- losses (one task, unbatched: methods vmap over the meta-batch) -------------------
    def inner_loss(self, theta: Params, phi: Params, x: torch.Tensor, y: torch.Tensor):
        """f(θ, φ; support) for a single task."""
        raise NotImplementedError

    def outer_loss(self, theta: Params, phi: Params, x: torch.Tensor, y: torch.Tensor):
        """F(θ, φ; query) for a single task."""
        raise NotImplementedError

    def score(self, theta: Params, phi: Params, x: torch.Tensor, y: torch.Tensor):
        """Per-example values of `metric` on a query set (1/0 correctness, squared
        error, ...), for a single task."""
        raise NotImplementedError

    # -- episodes ------------------------------------------------------------------------
    def sample_batch(self, split: str, size: int, generator: torch.Generator) -> EpisodeBatch:
        """`size` episodes of `split` ("train", "validation" or "test"), drawn from
        `generator` only, so a seed fixes them."""
        raise NotImplementedError

    def exact_hypergradient(self, phi: Params, batch: EpisodeBatch) -> Params | None:
        """The exact dF/dφ of the meta-batch's mean outer loss, where the task has a
        closed form; None otherwise."""
        return None

    # -- data and extra results --------------------------------------------------------------
    extra_metrics: ClassVar[tuple[str, ...]] = ()
    """Names of the per-episode values `adaptation_metrics` returns, recorded beside
    `metric` after the main number of test-time steps (a source's own score)."""

    def adaptation_metrics(self, theta_start: Params, theta: Params, phi: Params,
                           support_x: torch.Tensor, support_y: torch.Tensor
                           ) -> dict[str, torch.Tensor]:
        """One test episode's `extra_metrics`, from θ before (θ₀(φ)) and after adaptation
        on its support set (single task, like `score`)."""
        return {}

    @classmethod
    def check_data(cls, config: Mapping[str, Any]) -> str | None:
        """Why the task's data cannot be used (one line saying what to put where), or None.
        Called at planning time, before anything is written; it must not create files
        unless downloads were asked for (benchsuite.blocks.data.download_allowed)."""
        return None

    def final_metrics(self, phi: Params) -> dict[str, float]:
        """Metrics of the meta-trained φ beyond `metric` (e.g. how well learned example
        weights flag corrupted labels); the trial records them with the others."""
        return {}

    def labelled_training_examples(self):
        """The training split's examples under their global class labels, for plain
        transfer learning (Chen et al. 2019): a torch Dataset of (x, label) pairs with
        labels 0 … C−1 and an attribute `classes` = C. None where the task has no
        classes (regression, hyperparameter problems)."""
        return None


class Method:
    """A hypergradient method. Subclasses set the class attributes and `meta_gradient`.

    Class attributes:
      name: registry name; `aliases` are further names for the same algorithm.
      paper: the paper whose update the file implements.
      supports: the problem kinds it applies to.
      hyperparameters: its own keys with the paper's defaults (overridable with --set).
      task_overrides: task-level keys the method's paper fixes (e.g. Reptile's outer
        step); they override the task's defaults, and --set overrides them.
      accuracy_knob: the config key that trades hypergradient accuracy for time (inner
        steps, CG iterations, ...), or None; `benchsuite sweep` varies it.

    Every key a method reads is declared once: the engine's (inner_lr, inner_steps, …) in
    benchsuite.config.Settings, its own in its `Settings`. Where its solver reuses an
    engine key in another role (the inner step α as a Neumann-series step), its Settings
    docstring says so and cites the derivation.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""
    supports: ClassVar[frozenset[str]]
    hyperparameters: ClassVar[dict[str, Any]] = {}
    task_overrides: ClassVar[dict[str, Any]] = {}
    adapts_randomly: ClassVar[bool] = False
    """Whether `adapt` draws random numbers (MT-net's masks): evaluation then gives every
    episode of a vmapped chunk its own draws."""
    accuracy_knob: ClassVar[str | None] = None
    is_floor: ClassVar[bool] = False
    """Whether the method is a floor the leaderboard sets every method against (it
    chooses its own test-time settings; `benchsuite tune` leaves it alone)."""
    meta_trains: ClassVar[bool] = True
    """Whether the method meta-trains φ; one that does not (a floor that only adapts at
    test time) runs 0 iterations, whatever the task, the protocol or --set say."""
    inner_step_keys: ClassVar[tuple[str, ...]] = ("inner_lr",)
    """The config keys that are its inner step size, which `benchsuite tune` scales
    (Meta-SGD: the range its learned step sizes start in)."""
    implementation_of: ClassVar[str | None] = None
    """The method whose algorithm this one re-implements (e.g. through another library):
    the leaderboard shows its rows as a check of that method's, not ranked."""
    first_order: ClassVar[bool] = False
    """Whether the default `adapt` treats each inner gradient as a constant (no
    second-order graph through the inner loop)."""
    declared_settings: ClassVar[tuple[settings.Setting, ...]] = ()
    """The keys of the method's typed `Settings` (benchsuite.core.settings), set when the class
    is defined; their defaults are `hyperparameters`."""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        settings.adopt(cls, "hyperparameters")

    def __init__(self, config: Mapping[str, Any]):
        self.config = config

    @classmethod
    def incompatibility(cls, task: type[Task]) -> str | None:
        """Why this method cannot run on `task`, or None if it can."""
        if task.kind not in cls.supports:
            kinds = ", ".join(sorted(cls.supports))
            return f"{cls.name} handles {kinds} problems; {task.name} is a {task.kind} problem"
        return None

    def init_meta_params(self, task: Task, generator: torch.Generator) -> Params:
        """φ₀ plus any meta-parameters the method owns (e.g. Meta-SGD's step sizes), stored
        with `owned`; the task is only ever given `task_part(phi)`."""
        return task.init_meta_params(generator)

    def meta_gradient(self, task: Task, phi: Params, batch: EpisodeBatch) -> MetaGradient:
        """One meta-step's hypergradient on a meta-batch."""
        raise NotImplementedError

    def adapt(self, task: Task, phi: Params, support_x, support_y, steps: int) -> Params:
        """θ adapted on one task's support set with `steps` inner steps, as this method
        adapts at test time (and, for most methods, inside `meta_gradient`). The default
        is MAML's inner loop: `steps` steps of θ ← θ − α ∇_θ f(θ, φ; S) from θ₀(φ) with
        α = inner_lr, differentiable through every step unless `first_order`. A method
        with another inner loop (a proximal term, learned step sizes, transforms)
        overrides it."""
        return gradient_descent(task, task.initial_theta(phi), phi, support_x, support_y,
                                steps, self.config["inner_lr"], first_order=self.first_order)

    def after_training(self, task: Task, phi: Params) -> None:
        """Called once when meta-training has ended, before the test episodes are scored
        (e.g. a floor choosing its test-time step size on validation episodes)."""

    def final_metrics(self, task: Task, phi: Params) -> dict[str, float]:
        """Metrics of the method beyond the task's (e.g. the step size a floor chose on
        validation episodes); the trial records them with the test metrics."""
        return {}

    def score(self, task: Task, phi: Params, theta: Params, x, y):
        """Per-example metric values of adapted θ on one task's query set, through the model
        this method adapts (methods that insert transforms into the model override this)."""
        return task.score(theta, task_part(phi), x, y)
