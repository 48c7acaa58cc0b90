"""The records of a results folder as one table (a row per record) for the report and
the results table a run ends with: each record's row signature, whether its code is
older than the plugins', older-code twins of current trials dropped; and a task's
metric."""

from __future__ import annotations

import pandas as pd

from benchsuite.reporting.rows import config_signature
from benchsuite.running.registry import Registry, changed_code


def records_frame(records: list[dict], registry: Registry) -> pd.DataFrame:
    """One row per record, with its row signature and whether its code is older than the
    plugins' (rows.py), older-code twins of current trials dropped."""
    frame = pd.DataFrame(records)
    frame["signature"] = frame.config.map(config_signature)
    frame["stale"] = [is_stale(r, registry) for r in records]
    return drop_superseded(frame)


def is_stale(record: dict, registry: Registry) -> bool:
    method, task = registry.methods.get(record["method"]), registry.tasks.get(record["task"])
    return bool(method and task and changed_code(record.get("code") or {}, method, task))


def drop_superseded(frame: pd.DataFrame) -> pd.DataFrame:
    """Where a trial exists for the current plugin code, its older-code twins are dropped."""
    keys = ["task", "method", "signature", "seed"]
    has_current = frame.groupby(keys).stale.transform(lambda stale: (~stale).any())
    return frame[~(frame.stale & has_current)]


def objective(group: pd.DataFrame, registry: Registry) -> tuple[str, bool]:
    """The task's metric as its plugin defines it now, else as most of its records say."""
    task = registry.tasks.get(group.task.iloc[0])
    if task:
        return task.cls.metric, task.cls.higher_is_better
    objective = group.objective.map(lambda o: (o["metric"], o["higher_is_better"]))
    return objective.mode().iloc[0]
