"""Trial configuration: layering of defaults, `--set` overrides, and the trial identity.

A trial's config is built in this order, later layers winning:
  runner defaults < task defaults < task's quick budget (with --budget quick)
  < method's task_overrides < method hyperparameters < command-line options < --set.
An override is `key=value` (applies wherever `key` exists) or `scope.key=value` with
`scope` a method or task name (applies to that plugin's trials only). Values are parsed to
the type of the default they replace.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from benchsuite.errors import UsageError

RUNNER_DEFAULTS: dict[str, Any] = {
    "meta_optimizer": "adam",       # adam | sgd, on φ
    "meta_lr_schedule": "constant",  # constant | linear (annealed to 0 at the last iteration)
    "test_episodes": 600,           # fixed, seeded meta-test episodes shared by all methods
    "val_episodes": 100,            # fixed validation episodes for the learning curve
    "curve_points": 20,             # learning-curve evaluations per trial
    "warmup": 3,                    # meta-iterations excluded from the timing median
    "batching": "vmap",             # vmap | loop over the tasks of a chunk (and of eval_chunk)
    "meta_chunk": 0,                # tasks per accumulated meta-gradient chunk; 0 = all
    "eval_chunk": 100,              # test episodes adapted together
}

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
            options: dict[str, Any], overrides: list[Override]) -> dict[str, Any]:
    config: dict[str, Any] = dict(RUNNER_DEFAULTS)
    config.update(task_cls.defaults)
    if budget == "quick":
        config.update(getattr(task_cls, "quick", {}))
    config.update(method_cls.task_overrides)
    config.update(method_cls.hyperparameters)
    config.update({k: v for k, v in options.items() if v is not None})
    for override in overrides:
        if override.scope not in (None, task_cls.name, method_cls.name, *method_cls.aliases):
            continue
        if override.key in config:
            config[override.key] = coerce(override.raw, config[override.key], override.key)
    config.update(seed=seed, budget=budget, device=device)
    return config


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


def trial_id(method: str, task: str, config: dict[str, Any], code: dict[str, str]) -> str:
    """Stable identity of a trial: its names, full config and the plugin sources' hashes
    (editing one method's file invalidates only that method's results)."""
    blob = json.dumps({"method": method, "task": task, "config": config, "code": code},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
