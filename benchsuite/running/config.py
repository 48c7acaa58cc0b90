"""Trial configuration: layering of defaults, `--set` overrides, and the trial identity.

A trial's config is built in this order, later layers winning:
  runner defaults < task defaults < task's quick budget (with --budget quick)
  < method's task_overrides < method hyperparameters < the trial's protocol
  (benchsuite.running.protocols: the method's paper protocol for the task, a tuned one, or the
  one chosen with --protocol) < command-line options < --set.
A method is scored at the number of inner steps it trains with: `eval_inner_steps` is
`inner_steps` unless the protocol, an option or `--set` names it.
An override is `key=value` (applies wherever `key` exists) or `scope.key=value` with
`scope` a method or task name (applies to that plugin's trials only). Values are parsed to
the type of the default they replace.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from benchsuite.core import settings
from benchsuite.core.errors import UsageError
from benchsuite.core.settings import AtLeast, Positive


class MetaOptimizer:
    """The outer optimiser every trial builds on φ (benchsuite.running.trial), at rate `meta_lr`
    over the trial's `iterations`; any method, task or protocol may set these keys."""

    @dataclass(frozen=True)
    class Settings:
        meta_optimizer: Literal["adam", "adamw", "sgd"] = "adam"
        """The optimiser on φ: Adam, AdamW (Adam with decoupled weight decay, Loshchilov
        & Hutter 2019) or plain SGD, as torch.optim implements them."""
        meta_weight_decay: Annotated[float, AtLeast(0)] = 0.0
        """Weight decay on φ: decoupled with adamw (φ ← φ − η·wd·φ before the Adam
        step); with adam and sgd an L2 term wd·φ added to the meta-gradient, as
        torch.optim applies it."""
        meta_adam_eps: Annotated[float, Positive] = 1e-8
        """ε in the denominator of adam's and adamw's step (torch's default 1e-8);
        unused by sgd."""
        meta_lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
        """How the rate changes over the iterations k < K: constant; linear, η(1 − k/K);
        cosine, η/2 (1 + cos(πk/K)) (torch's CosineAnnealingLR with T_max = K). Both
        anneal to 0 at the last iteration."""


META_OPTIMIZER_SETTINGS = settings.declared(MetaOptimizer)

RUNNER_DEFAULTS: dict[str, Any] = {
    **settings.defaults(META_OPTIMIZER_SETTINGS),
    "test_episodes": 600,           # fixed, seeded meta-test episodes shared by all methods
    "val_episodes": 100,            # fixed validation episodes for the learning curve
    "curve_points": 20,             # learning-curve evaluations per trial
    "warmup": 3,                    # meta-iterations excluded from the timing median
    "batching": "vmap",             # vmap | loop over the tasks of a chunk (and of eval_chunk)
    "meta_chunk": 0,                # tasks per accumulated meta-gradient chunk; 0 = all
    "eval_chunk": 100,              # test episodes adapted together
}

RUNNER_CHOICES: dict[str, tuple[str, ...]] = {
    "batching": ("vmap", "loop"),
}
"""The runner keys that take one of a few words (benchsuite.running.trial,
benchsuite.core.execution)."""

BUDGETS = ("quick", "paper")
COMMAND_LINE_KEYS = {"seed": "--seeds", "budget": "--budget", "device": "--device"}


@dataclass(frozen=True)
class Override:
    scope: str | None
    key: str
    raw: str


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
        overrides.append(Override(scope or None, key, raw))
    return overrides


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
            options: dict[str, Any], overrides: list[Override],
            protocol: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config of one trial; `protocol` holds the settings of its protocol."""
    protocol = protocol or {}
    config: dict[str, Any] = dict(RUNNER_DEFAULTS)
    config.update(task_cls.defaults)
    if budget == "quick":
        config.update(getattr(task_cls, "quick", {}))
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
            config[override.key] = coerce(override.raw, config[override.key], override.key)
            scored_explicitly |= override.key == "eval_inner_steps"
    if not scored_explicitly:
        config["eval_inner_steps"] = config["inner_steps"]
    config.update(seed=seed, budget=budget, device=device)
    problems = value_problems(config)
    if problems:
        raise UsageError(f"{method_cls.name} × {task_cls.name}: {problems[0]}")
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


def value_problems(config: Mapping[str, Any]) -> list[str]:
    """Values no trial can run with, whatever the plugin: a non-finite number anywhere, or
    a runner choice that is not one of its words. Ranges of the keys are the task's and
    the plugins' typed settings (benchsuite.core.settings) and Task.check_config."""
    problems = []
    for key, value in config.items():
        numbers = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            problems.append(f"{key} = {value!r} is not a finite number")
    for key, choices in RUNNER_CHOICES.items():
        if key in config and config[key] not in choices:
            problems.append(f"{key} must be one of {', '.join(choices)} "
                            f"(got {config[key]!r})")
    return problems + settings.problems(META_OPTIMIZER_SETTINGS, config)


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
            raise UsageError(f"unknown --set key {override.key!r}{where}; valid keys: "
                             f"{', '.join(sorted(known))}")


IDENTITY_NEUTRAL: dict[str, Any] = {"meta_weight_decay": 0.0, "meta_adam_eps": 1e-8}
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
