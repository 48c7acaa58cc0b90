"""The planning module (benchsuite.running.planning): one place resolves configs and plans trials;
trial identities do not depend on which tool planned them; the package's modules import
each other without a cycle; record statuses are named once (benchsuite.storage.records)."""

import ast
import dataclasses
from pathlib import Path

import pytest

from benchsuite.core.errors import UsageError
from benchsuite.running import config as configuration
from benchsuite.running import planning, protocols, runner, sweep
from benchsuite.storage import identity, records, reproducibility

PACKAGE = identity.ENGINE

# maml × sinusoid, seed 0, quick budget, CPU: the trial id planned before planning moved
# out of benchsuite/running/runner.py, with the code hashes of that moment. A trial id hashes the
# config and the code: with the recorded hashes the id must come back from today's config
# (a change here means the config of the trial changed), and with unchanged code the
# planned id itself must be this one.
# The config gained the engine key `compile` (the compiled path, issue 25): the id below is
# the same trial's with that key, under the same recorded code hashes.
RECORDED_ID = "058b6031a98b13d6"
RECORDED_CODE = {"method": "49b3dae1475c5ee5", "task": "bd7296eaf2b3b501",
                 "engine": "987d73987e42bfab"}


def plan_one(registry, out, **kwargs):
    return planning.plan(registry, methods="maml", tasks="sinusoid", seeds=1, budget="quick",
                         device="cpu", options={}, set_items=[], out=out, **kwargs)[0]


def test_trial_identity_survives_the_move(registry, tmp_path):
    spec = plan_one(registry, Path("/tmp/x"))
    assert configuration.trial_id("maml", "sinusoid", spec.config, RECORDED_CODE) == RECORDED_ID
    assert spec.trial_id == configuration.trial_id("maml", "sinusoid", spec.config, spec.code)
    if spec.code == RECORDED_CODE:
        assert spec.trial_id == RECORDED_ID
    assert spec.path == Path("/tmp/x") / "sinusoid" / "maml" / f"seed0-{spec.trial_id}.json"
    assert spec.protocol["kind"] == "paper" and spec.protocol["name"] == "maml/sinusoid"


def test_trial_specs_are_frozen(registry, tmp_path):
    spec = plan_one(registry, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.config = {}  # type: ignore[misc]
    assert dataclasses.fields(spec)[-1].name == "protocol"
    bare = planning.TrialSpec(method="m", task="t", seed=0, config={}, trial_id="i", code={},
                              method_path="", task_path="", path=tmp_path, objective={})
    assert bare.protocol == {} and bare.incompatible is None and bare.command == ""


def test_plan_pair_is_one_cell_of_the_grid(registry, tmp_path):
    grid = planning.plan(registry, methods="maml,fomaml", tasks="sinusoid", seeds=2,
                         budget="quick", device="cpu", options={"iterations": 7},
                         set_items=["maml.inner_lr=0.05"], out=tmp_path)
    loaded = protocols.load()
    overrides = configuration.parse_overrides(["maml.inner_lr=0.05"], {"maml", "fomaml",
                                                                       "sinusoid"})
    options = {"iterations": 7, **reproducibility.config_entries("cpu", False)}
    for spec in grid:
        protocol = planning.pair_protocol(registry, loaded, spec.method, spec.task)
        assert spec == planning.plan_pair(registry, spec.method, spec.task, spec.seed,
                                          budget="quick", device="cpu", options=options,
                                          overrides=overrides, out=tmp_path,
                                          protocol=protocol)
        assert spec.config == planning.resolve_pair(
            registry, spec.method, spec.task, seed=spec.seed, budget="quick", device="cpu",
            options=options, overrides=overrides, protocol=protocol)
    maml = next(s for s in grid if s.method == "maml")
    assert maml.config["inner_lr"] == 0.05 and maml.config["iterations"] == 7


def test_the_sweep_resolves_like_a_trial(registry):
    (pair,) = sweep.plan_sweep(registry, methods="maml", tasks="quadratic", seed=3,
                               device="cpu", set_items=["inner_steps=4"])
    loaded = protocols.load()
    assert pair.config == planning.resolve_pair(
        registry, "maml", "quadratic", seed=3, budget="quick", device="cpu", options={},
        overrides=configuration.parse_overrides(["inner_steps=4"], set()),
        protocol=planning.pair_protocol(registry, loaded, "maml", "quadratic"))
    assert pair.config["inner_steps"] == 4


def test_the_sweep_checks_the_device_as_run_does(registry):
    with pytest.raises(UsageError, match="unknown --device 'nope'"):
        sweep.plan_sweep(registry, methods="maml", tasks="quadratic", seed=0, device="nope",
                         set_items=[])


def test_the_sweep_checks_every_value_as_run_does(registry):
    """`--set implicit-cg.cg_steps=0` used to reach the sweep's hypergradients."""
    for plan in (lambda items: sweep.plan_sweep(registry, methods="implicit-cg",
                                                tasks="quadratic", seed=0, device="cpu",
                                                set_items=items),
                 lambda items: planning.plan(registry, methods="implicit-cg",
                                             tasks="quadratic", device="cpu",
                                             set_items=items)):
        with pytest.raises(UsageError, match=r"cg_steps must be at least 1 \(got 0\)"):
            plan(["implicit-cg.cg_steps=0"])
        with pytest.raises(UsageError, match="unknown --set key 'cg_step'"):
            plan(["cg_step=3"])


def test_seeds_are_named_once(registry, tmp_path):
    assert planning.seed_list(3) == [0, 1, 2] and planning.seed_list([4, 2, 4]) == [4, 2]
    with pytest.raises(UsageError, match="--seeds must be at least 1"):
        planning.seed_list(0)
    specs = planning.plan(registry, methods="maml", tasks="quadratic", seeds=[2, 5],
                          device="cpu", out=tmp_path)
    assert [(s.seed, s.config["seed"], s.path.name.split("-")[0]) for s in specs] == [
        (2, 2, "seed2"), (5, 5, "seed5")]
    (pair,) = sweep.plan_sweep(registry, methods="maml", tasks="quadratic", seed=5,
                               device="cpu", set_items=[])
    assert pair.config == specs[1].config


def test_rerun_config_copies_and_keeps_the_cpu(registry, tmp_path):
    spec = plan_one(registry, tmp_path)
    record = records.new_record(spec, records.FINISHED)
    config = planning.rerun_config(record)
    assert config == spec.config and config is not record["config"]


# -- imports -----------------------------------------------------------------------------------
def module_imports(path: Path) -> set[str]:
    """The benchsuite modules (as `subpackage/module`) the file imports at module level
    (inside `if TYPE_CHECKING:`, other `if`s and `try` included; imports inside functions
    are not)."""
    found: set[str] = set()

    def add(name: str) -> None:
        file = identity.module_file(name)
        if file is not None and file.name != "__init__.py":
            found.add(module_key(file))

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                add(node.module)
                for alias in node.names:
                    add(f"{node.module}.{alias.name}")
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)

    visit(ast.parse(path.read_text(), filename=str(path)).body)
    return found


def module_key(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").as_posix()


def import_graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    return {module_key(p): module_imports(p) - {module_key(p)} for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_benchsuite_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert {"running/planning", "storage/records", "running/runner"} <= set(graph)
    assert graph["running/planning"] >= {"storage/records", "running/config",
                                         "running/protocols"}
    # records types the spec structurally: it imports neither the planner nor the runner
    assert not {"running/planning", "running/runner"} & graph["storage/records"]
    assert "running/runner" not in graph["running/planning"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


FLOORS = {"core": 0, "blocks": 1, "storage": 1, "running": 2, "reporting": 3, "cli": 4,
          "__main__": 5}
"""docs/architecture.md: each subpackage builds only on its own modules and lower floors."""


def test_every_import_goes_down_the_layers():
    graph = import_graph()
    assert {key.split("/")[0] for key in graph} == set(FLOORS)
    upward = [(module, target) for module, targets in graph.items() for target in targets
              if target.split("/")[0] != module.split("/")[0]
              and FLOORS[target.split("/")[0]] >= FLOORS[module.split("/")[0]]]
    assert upward == []


# -- statuses ----------------------------------------------------------------------------------
def test_one_status_vocabulary():
    assert records.STATUSES == (records.FINISHED, records.NOT_APPLICABLE, records.FAILED,
                                records.DIVERGED, records.OOM, records.TIMEOUT)
    assert records.STATUSES == ("finished", "n/a", "failed", "diverged", "oom", "timeout")
    assert set(records.GOOD_STATUSES) <= set(records.DONE_STATUSES) <= set(records.STATUSES)
    assert records.DONE_STATUSES == ("finished", "n/a", "diverged")
    assert records.GOOD_STATUSES == ("finished", "n/a")
    assert runner.GOOD_STATUSES is records.GOOD_STATUSES


def string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


@pytest.mark.parametrize("module, allowed", [
    ("runner", set()), ("executors", set()), ("sweep", set()), ("planning", set()),
    ("progress", set()),
    ("verify", {"failed"}),  # a verdict of benchsuite verify, not a record's status
])
def test_statuses_are_named_not_spelled(module, allowed):
    spelled = string_constants(PACKAGE / "running" / f"{module}.py") & set(records.STATUSES)
    assert spelled <= allowed, f"{module}.py spells statuses {sorted(spelled - allowed)}"
