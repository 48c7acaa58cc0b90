"""Trial configuration: the engine's typed keys, layering of defaults, `--set` overrides,
and the trial identity.

Every key of a trial's config is declared once, typed and documented: the engine's keys
in `Settings` below, a task's and a method's own keys in their `Settings`
(benchsuite.core.settings). A trial's config is built in this order, later layers winning:
  engine defaults < task defaults < task's quick budget (with --budget quick)
  < method's task_overrides < method's own Settings < the trial's protocol
  (benchsuite.running.protocols: the method's paper protocol for the task, a tuned one, or the
  one chosen with --protocol) < command-line options < --set (or a grid file's
  settings); a method that does not meta-train (Method.meta_trains) runs 0 iterations.
A method is scored at the number of inner steps it trains with: `eval_inner_steps` is
`inner_steps` unless the protocol, an option or `--set` names it.
An override is `key=value` (applies wherever `key` exists) or `scope.key=value` with
`scope` a method or task name (applies to that plugin's trials only). Values are parsed to
the type of the default they replace.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from benchsuite.core.errors import UsageError
from benchsuite.core.settings import (
    Annotated,
    AtLeast,
    Given,
    Positive,
    Setting,
    declared_in,
    defaults,
    problems,
)

TASK: Any = Given("the task's")
"""The default of an engine key every task sets in its `defaults` (its paper's value)."""
RUN: Any = Given("the command line")
"""The default of an engine key the command sets for each trial."""
UNSET: Any = Given("unset")
INNER_STEPS: Any = Given("inner_steps")
"""The default of an engine key a trial's config holds only where a task or run sets it."""


@dataclass(frozen=True)
class StepCounts:
    """A tuple of step counts, each at least 0."""

    text = "each ≥ 0"

    def problem(self, value: Any) -> str | None:
        return None if all(steps >= 0 for steps in value) else (
            "must hold step counts of at least 0")


@dataclass(frozen=True)
class Settings:
    """The keys the engine reads in every trial (benchsuite.running.trial,
    benchsuite.core.execution, and the default inner loop of
    benchsuite.core.contract.Method.adapt), whatever the method and task. A key here has
    one meaning for every method; a method whose solver reuses one of them (the inner
    step `inner_lr` as a series or fixed-point step) says so in its own Settings
    docstring."""

    inner_steps: Annotated[int, AtLeast(0)] = TASK
    """K, the inner gradient steps θ_k+1 = θ_k − α ∇_θ f(θ_k, φ; S) a method trains with."""
    inner_lr: Annotated[float, Positive] = TASK
    """α, the inner gradient-descent step size (the same α at test time)."""
    meta_batch: Annotated[int, AtLeast(1)] = TASK
    """Tasks per meta-batch (per outer step)."""
    iterations: Annotated[int, AtLeast(0)] = TASK
    """Meta-iterations (outer steps); 0 for a method that does not meta-train
    (Method.meta_trains)."""
    meta_lr: Annotated[float, Positive] = TASK
    """β, the meta-optimiser's step size on φ."""
    meta_optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """The optimiser that steps φ with the hypergradient: Adam, AdamW (Adam with
    decoupled weight decay, Loshchilov & Hutter 2019) or plain SGD, as torch.optim
    implements them (benchsuite.running.trial)."""
    meta_weight_decay: Annotated[float, AtLeast(0)] = 0.0
    """Weight decay on φ: decoupled with adamw (φ ← φ − η·wd·φ before the Adam step); with
    adam and sgd an L2 term wd·φ added to the meta-gradient, as torch.optim applies it."""
    meta_adam_eps: Annotated[float, Positive] = 1e-8
    """ε in the denominator of adam's and adamw's step (torch's default 1e-8); unused by
    sgd."""
    meta_lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """How the rate changes over the iterations k < K: constant; linear, η(1 − k/K);
    cosine, η/2 (1 + cos(πk/K)) (torch's CosineAnnealingLR with T_max = K). Both anneal to
    0 at the last iteration."""
    test_episodes: Annotated[int, AtLeast(1)] = 600
    """Fixed, seeded meta-test episodes, the same for every method."""
    val_episodes: Annotated[int, AtLeast(1)] = 100
    """Fixed validation episodes, scored at every learning-curve point (and by tuning)."""
    curve_points: Annotated[int, AtLeast(1)] = 20
    """Learning-curve evaluations per trial."""
    warmup: Annotated[int, AtLeast(0)] = 3
    """Meta-iterations left out of the timing median."""
    batching: Literal["vmap", "loop"] = "vmap"
    """How the tasks of a chunk (and of an evaluation chunk) are run: vmapped or in a loop."""
    meta_chunk: Annotated[int, AtLeast(0)] = 0
    """Tasks per accumulated meta-gradient chunk; 0 = the whole meta-batch at once."""
    eval_chunk: Annotated[int, AtLeast(1)] = 100
    """Test or validation episodes adapted together."""
    compile: Literal["auto", "on", "off"] = "auto"
    """Whether the meta-step runs under torch.compile: `auto` when compiling pays over the
    trial's remaining iterations, `on` whenever the compiled step is faster, `off` never
    (benchsuite.running.compiled)."""
    eval_inner_steps: Annotated[int, AtLeast(0)] = INNER_STEPS
    """Inner steps at test time, the scored number: `inner_steps` unless a protocol, an
    option or --set names it."""
    eval_steps: Annotated[tuple[int, ...], StepCounts()] = UNSET
    """Further test-time step counts scored beside eval_inner_steps (e.g. 1, 5, 10)."""
    seed: Annotated[int, AtLeast(0)] = RUN
    """The trial's seed: with the task's name it fixes φ₀, the meta-batches and episodes."""
    budget: Literal["quick", "paper"] = RUN
    """`paper`: the task's iterations; `quick`: the task's CPU-sized `quick` budget."""
    device: str = RUN
    """The torch device the trial runs on (cpu, cuda, cuda:N)."""
    deterministic: bool = UNSET
    """CUDA trials: whether they run with deterministic algorithms (--nondeterministic)."""


ENGINE_SETTINGS: tuple[Setting, ...] = tuple(declared_in(Settings, "config.Settings"))
"""The engine's keys, typed (benchsuite.core.settings)."""
ENGINE_KEYS = frozenset(s.name for s in ENGINE_SETTINGS)
TASK_KEYS = tuple(s.name for s in ENGINE_SETTINGS if s.default is TASK)
"""The engine keys every task's `defaults` must set."""
RUNNER_DEFAULTS: dict[str, Any] = defaults(list(ENGINE_SETTINGS))
"""The engine keys' own defaults, the first layer of every config."""

BUDGETS = ("quick", "paper")
COMMAND_LINE_KEYS = {"seed": "--seeds", "budget": "--budget", "device": "--device"}


@dataclass(frozen=True)
class Override:
    """One `--set` item (`raw`, a string parsed to the type of the value it replaces) or
    one setting of a grid file (`value`, typed by TOML, checked against that type)."""

    scope: str | None
    key: str
    raw: str | None = None
    value: Any = None
    kind: str | None = None
    """What `scope` must name, "method" or "task", where the source says (a grid file's
    `[method.NAME]` table); None: either."""

    def parsed(self, default: Any) -> Any:
        """The value this override gives a key whose current value is `default`."""
        if self.raw is not None:
            return coerce(self.raw, default, self.key)
        value = tuple(self.value) if isinstance(self.value, list) else self.value
        if not same_kind(value, default):
            where = f"[{self.kind or 'set'}.{self.scope}]" if self.scope else "[set]"
            raise UsageError(f"setting {where} {self.key} = {self.value!r} is not of the "
                             f"type of its default {default!r}")
        return value


def parse_overrides(items: list[str], scopes: set[str]) -> list[Override]:
    overrides = []
    for item in items:
        if "=" not in item:
            raise UsageError(f"bad --set {item!r}: write key=value or name.key=value")
        lhs, raw = item.split("=", 1)
        scope, _, key = lhs.rpartition(".")
        if scope and scope not in scopes:
            raise UsageError(f"bad --set {item!r}: {scope!r} is not a method or task in this "
                             f"run ({', '.join(sorted(scopes))})")
        if not key:
            raise UsageError(f"bad --set {item!r}: empty key")
        if key in COMMAND_LINE_KEYS:
            raise UsageError(f"bad --set {item!r}: {key} is chosen with "
                             f"{COMMAND_LINE_KEYS[key]}")
        overrides.append(Override(scope or None, key, raw=raw))
    return overrides


def in_scope(overrides: list[Override], methods: set[str], tasks: set[str],
             known_methods: set[str], known_tasks: set[str]) -> list[Override]:
    """The typed overrides (a grid file's settings) that apply to a run of `methods` ×
    `tasks`. Each must name a key the command line does not choose and, where scoped, a
    registered method or task (`known_*`); one scoped to a method or task the run leaves
    out (the command line narrowed the file's selection) does not apply."""
    applying = []
    for override in overrides:
        where = f"[{override.kind}.{override.scope}]" if override.scope else "[set]"
        if override.key in COMMAND_LINE_KEYS:
            raise UsageError(f"setting {override.key} in {where}: {override.key} is chosen "
                             f"with {COMMAND_LINE_KEYS[override.key]}")
        if override.scope is not None:
            known = {"method": known_methods, "task": known_tasks}.get(
                override.kind or "", known_methods | known_tasks)
            if override.scope not in known:
                raise UsageError(f"settings {where}: {override.scope!r} is not a "
                                 f"{override.kind or 'method or task'}; run `benchsuite "
                                 "list` for the names")
            if override.scope not in methods | tasks:
                continue
        applying.append(override)
    return applying


def coerce(value: str, default: Any, key: str) -> Any:
    """Parse `value` to the type of `default`; tuples are comma-separated."""
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            kind = type(default[0]) if default else str
            return tuple(kind(v) for v in value.split(",") if v)
        return value
    except ValueError:
        raise UsageError(f"bad value for {key}: {value!r} is not a "
                         f"{type(default).__name__} (default {default!r})") from None


def resolve(task_cls, method_cls, *, seed: int, budget: str, device: str,
            options: Mapping[str, Any], overrides: list[Override],
            protocol: Mapping[str, Any] | None = None,
            last: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config of one trial; `protocol` holds the settings of its protocol, `last`
    settings applied after every override (a tuning grid point). Every value is checked
    against its declaration (the engine's, the task's or the method's Settings)."""
    protocol = protocol or {}
    config: dict[str, Any] = dict(RUNNER_DEFAULTS)
    config.update(task_cls.defaults)
    if budget == "quick":
        config.update(task_cls.quick)
    config.update(method_cls.task_overrides)
    clash = sorted(set(method_cls.hyperparameters) & set(config))
    if clash:  # a method's own key would silently replace the task's or the runner's
        raise UsageError(f"{method_cls.name} declares {', '.join(clash)}, which "
                         f"{task_cls.name} (or the runner) already has: rename it in the "
                         "method, or set the task's key in its protocol file")
    config.update(method_cls.hyperparameters)
    config["eval_inner_steps"] = config["inner_steps"]  # settled below
    unknown = sorted(set(protocol) - set(config))
    if unknown:
        raise UsageError(f"{method_cls.name} × {task_cls.name}: its protocol sets "
                         f"{', '.join(unknown)}, which neither has; fix the protocol file")
    for key, value in protocol.items():
        if not same_kind(value, config[key]):
            raise UsageError(f"{method_cls.name} × {task_cls.name}: its protocol sets "
                             f"{key} = {value!r}, not of the type of its default "
                             f"{config[key]!r}")
    config.update(protocol)
    config.update({k: v for k, v in options.items() if v is not None})
    scored_explicitly = "eval_inner_steps" in protocol
    for override in overrides:
        if override.scope not in (None, task_cls.name, method_cls.name, *method_cls.aliases):
            continue
        if override.key in config:
            config[override.key] = override.parsed(config[override.key])
            scored_explicitly |= override.key == "eval_inner_steps"
    config.update(last or {})
    if not scored_explicitly:
        config["eval_inner_steps"] = config["inner_steps"]
    if not method_cls.meta_trains:
        config["iterations"] = 0
    config.update(seed=seed, budget=budget, device=device)
    found = problems([*ENGINE_SETTINGS, *task_cls.declared_settings,
                      *method_cls.declared_settings], config)
    if found:
        raise UsageError(f"{method_cls.name} × {task_cls.name} (seed {seed}): {found[0]}")
    return config


def same_kind(value: Any, default: Any) -> bool:
    """Whether `value` can stand where `default` does: the same type, or a whole number
    where a float is expected (TOML writes 1e-3 and 1.0, but also 1)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, tuple):
        return isinstance(value, tuple)
    return isinstance(value, type(default))


def check_overrides_known(overrides: list[Override], configs: list[dict[str, Any]],
                          names: list[set[str]] | None = None) -> None:
    """Every override must name a key that some trial in its scope has. `names[i]` holds
    the method and task names of `configs[i]`; without it, every config is in scope."""
    for override in overrides:
        known = set().union(*(config.keys() for i, config in enumerate(configs)
                              if override.scope is None or names is None
                              or override.scope in names[i]))
        known -= COMMAND_LINE_KEYS.keys()
        if override.key not in known:
            where = f" for {override.scope}" if override.scope else ""
            what = "--set key" if override.raw is not None else "setting"
            raise UsageError(f"unknown {what} {override.key!r}{where}; valid keys: "
                             f"{', '.join(sorted(known))}")


IDENTITY_NEUTRAL: dict[str, Any] = {"meta_weight_decay": 0.0, "meta_adam_eps": 1e-8,
                                     "compile": "off"}
"""Keys added after records existed, with the value that computes what trials computed
before them: at that value they are left out of a trial's identity, so that a trial which
runs as before keeps its id."""


def trial_id(method: str, task: str, config: dict[str, Any], code: dict[str, str]) -> str:
    """Stable identity of a trial: its names, full config (less IDENTITY_NEUTRAL keys at
    their neutral values) and the plugin sources' hashes (editing one method's file
    invalidates only that method's results)."""
    config = {k: v for k, v in config.items()
              if not (k in IDENTITY_NEUTRAL and v == IDENTITY_NEUTRAL[k])}
    blob = json.dumps({"method": method, "task": task, "config": config, "code": code},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
