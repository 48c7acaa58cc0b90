"""`benchsuite migrate`: carry stored records over a code change that leaves their numbers
as they were, so that a refactor does not cost a re-run of every grid.

A record's id covers its config and the identity of the code it ran through
(benchsuite.storage.identity). After the code or the planned config changes, `run` no longer
finds the record and `verify` calls it stale. `migrate` re-plans each record's trial from
the command stored in it, as `benchsuite run` would plan it now, and calls it

  current    when the planned trial is the record's: nothing to do;
  changed    when the planned config gives another value to a key the record holds: a
             different trial, which `run` runs again (the record stays, stale);
  migrated   otherwise, when the trial re-run under the current code with the planned
             config gives every compared number of the record back bit for bit
             (benchsuite.running.verify: the start of the trial up to its first curve
             point, or with `full` the whole trial and every test metric); a key added
             since the record was made takes the value that runs as the record ran
             (benchsuite.running.config.IDENTITY_NEUTRAL), and so does one the record
             holds at that value (an earlier migration's: the record's command predates
             the key, so the command's default for it now is not what ran). The record
             is re-keyed: it takes that config, the code identity and the id (and file
             name), and a `migrations` entry says from which id and code and by which
             check;
  MISMATCH   when a number differs: the code change changed the trial; re-run it;
  skipped    a record that did not finish (failed, timeout, oom): `run` runs it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchsuite.running.config import IDENTITY_NEUTRAL, trial_id
from benchsuite.running.planning import TrialSpec
from benchsuite.running.registry import Registry
from benchsuite.running.verify import verify
from benchsuite.storage.records import read_record, record_lock, record_path, write_atomic

CURRENT, CHANGED, MIGRATED, MISMATCH, SKIPPED = ("current", "changed", "migrated", "MISMATCH",
                                               "skipped")


@dataclass(frozen=True)
class Migration:
    path: Path
    """Where the record is now (its new file when migrated)."""
    result: str
    detail: str = ""

    def row(self) -> list[str]:
        return [str(self.path), self.result, self.detail]


def changed_values(stored: dict, planned: dict) -> list[str]:
    """The keys the record holds to which the planned config gives another value (keys the
    planned config adds, at their defaults, are not changes of the trial, nor are keys the
    record holds at their neutral value: `ran_neutral`)."""
    return [key for key in sorted(stored) if not ran_neutral(stored, key)
            and (key not in planned or as_stored(planned[key]) != stored[key])]


def ran_neutral(stored: dict, key: str) -> bool:
    """Whether the record ran `key` as records did before the key existed (absent, or at
    its IDENTITY_NEUTRAL value)."""
    return key in IDENTITY_NEUTRAL and stored.get(key, IDENTITY_NEUTRAL[key]) == \
        IDENTITY_NEUTRAL[key]


def as_stored(value: Any) -> Any:
    """A config value as a record holds it (JSON: tuples are lists)."""
    return json.loads(json.dumps(value, default=str))


def migrate_record(path: Path, record: dict, spec: TrialSpec, registry: Registry,
                   full: bool = False) -> Migration:
    """Re-key `record` (stored at `path`) to the planned trial `spec` when a re-run under
    the current code gives its numbers back."""
    if spec.trial_id == record["id"]:
        return Migration(path, CURRENT)
    changed = changed_values(record["config"], spec.config)
    if changed:
        shown = ", ".join(f"{key} {record['config'][key]!r} -> {spec.config.get(key)!r}"
                          for key in changed[:3])
        return Migration(path, CHANGED, f"{shown}; re-run it")
    # a key added since the record was made takes the value that runs as the record ran
    config = {**spec.config, **{key: neutral for key, neutral in IDENTITY_NEUTRAL.items()
                                if key in spec.config and ran_neutral(record["config"], key)}}
    trial = trial_id(spec.method, spec.task, config, spec.code)
    if trial == record["id"]:
        return Migration(path, CURRENT)
    target = record_path(spec.path.parents[2], spec.task, spec.method, spec.seed, trial)
    candidate = {**record, "config": config, "code": spec.code, "id": trial}
    verdict = verify(candidate, registry, quick=not full)
    if verdict.result == "skipped":  # a failed or timed-out record: `run` runs it again
        return Migration(path, SKIPPED, verdict.detail)
    if verdict.result != "identical":
        return Migration(path, MISMATCH, f"{verdict.result}: {verdict.detail}")
    candidate["migrations"] = [*record.get("migrations", []), {
        "from_id": record["id"], "from_code": record["code"], "checked": verdict.check,
        "compared": verdict.detail, "at": datetime.now(UTC).isoformat(timespec="seconds")}]
    with record_lock(target):
        write_atomic(target, candidate)
    if target != path:
        with record_lock(path):
            path.unlink(missing_ok=True)
    return Migration(target, MIGRATED, f"{verdict.check}, {verdict.detail} identical")


def migrate_records(paths: Iterable[Path], plan_of: Callable[[dict], TrialSpec | None],
                    registry: Registry, full: bool = False,
                    progress: Callable[[str], None] = lambda _: None) -> list[Migration]:
    """Migrate each record at `paths` to the trial `plan_of(record)` plans for it now (None:
    the record's command plans no such trial any more)."""
    outcomes = []
    for path in sorted(paths):
        try:
            record = read_record(path)
        except ValueError as error:  # not a record `run` or `report` would read either
            outcomes.append(Migration(path, SKIPPED, f"unreadable: {error}"))
            continue
        spec = plan_of(record)
        if spec is None:
            outcomes.append(Migration(path, CHANGED, "its command no longer plans this "
                                                     "trial; re-run it"))
            continue
        progress(f"migrating {record['method']} × {record['task']} (seed {record['seed']})")
        outcomes.append(migrate_record(path, record, spec, registry, full))
    return outcomes
