"""Typed plugin settings (benchsuite.core.settings): field docstrings read from the source,
values checked against their annotations, defaults and descriptions."""

import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import pytest

from benchsuite.core import settings

PLUGIN = '''
from dataclasses import dataclass

from benchsuite.core.settings import Annotated, AtLeast, Fraction, Literal, Positive


class Toy:
    @dataclass(frozen=True)
    class Settings:
        proximal_lambda: Annotated[float, Positive] = 2.0
        """λ, the weight of
        the proximal term."""
        cg_steps: Annotated[int, AtLeast(1)] = 5
        """Conjugate-gradient iterations."""
        inner_optimizer: Literal["sgd", "adam"] = "sgd"
        """The inner optimiser."""
        mix: Annotated[float, Fraction] = 0.5
        """A share."""
        on_query: bool = False
        """Train on the query too."""
        steps: tuple[int, ...] = (1, 5)
        """Further step counts."""
'''


def load(tmp_path, source, name="toy"):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(f"settings_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as the registry loads a plugin (dataclasses need it)
    spec.loader.exec_module(module)
    return module, path


@pytest.fixture
def toy(tmp_path):
    module, path = load(tmp_path, PLUGIN)
    return settings.declared(module.Toy)


def test_fields_become_settings_with_their_docstrings(toy):
    assert [s.name for s in toy] == ["proximal_lambda", "cg_steps", "inner_optimizer", "mix",
                                     "on_query", "steps"]
    assert toy[0].doc == "λ, the weight of the proximal term."
    assert settings.defaults(toy) == {"proximal_lambda": 2.0, "cg_steps": 5,
                                      "inner_optimizer": "sgd", "mix": 0.5,
                                      "on_query": False, "steps": (1, 5)}
    rows = settings.describe(toy)
    assert rows[0] == ["proximal_lambda", "float, > 0", "2.0",
                       "λ, the weight of the proximal term."]
    assert rows[1][1] == "int, ≥ 1" and rows[2][1] == "'sgd' | 'adam'"


@pytest.mark.parametrize("key, value, message", [
    ("proximal_lambda", 0.0, "proximal_lambda must be positive (got 0.0)"),
    ("proximal_lambda", float("inf"), "proximal_lambda must be a finite number"),
    ("proximal_lambda", True, "proximal_lambda must be a number"),
    ("cg_steps", 0, "cg_steps must be at least 1 (got 0)"),
    ("cg_steps", 2.5, "cg_steps must be a whole number"),
    ("inner_optimizer", "foo", "inner_optimizer must be one of sgd, adam (got 'foo')"),
    ("mix", 1.5, "mix must lie in [0, 1]"),
    ("on_query", "yes", "on_query must be true or false"),
    ("steps", (1, "x"), "steps must hold int values only"),
])
def test_bad_values_are_named(toy, key, value, message):
    config = {**settings.defaults(toy), key: value}
    assert settings.problems(toy, config) == [f"{message}" if "(got" in message
                                              else f"{message} (got {value!r})"]


def test_good_values_pass(toy):
    config = {**settings.defaults(toy), "proximal_lambda": 3, "inner_optimizer": "adam"}
    assert settings.problems(toy, config) == []


def test_a_field_without_a_docstring_or_a_default_is_refused(tmp_path):
    undocumented = PLUGIN.replace('        """Conjugate-gradient iterations."""\n', "")
    module, path = load(tmp_path, undocumented, "undocumented")
    with pytest.raises(TypeError, match="cg_steps needs a docstring"):
        settings.declared(module.Toy)
    no_default = ("from dataclasses import dataclass\n\n\nclass Toy:\n"
                  "    @dataclass(frozen=True)\n    class Settings:\n"
                  "        on_query: bool\n        \"\"\"Train on the query too.\"\"\"\n")
    module, path = load(tmp_path, no_default, "nodefault")
    with pytest.raises(TypeError, match="on_query needs a default"):
        settings.declared(module.Toy)


def test_string_annotations_resolve_in_the_plugin_namespace(tmp_path):
    module, path = load(tmp_path, "from __future__ import annotations\n" + PLUGIN, "future")
    declared = settings.declared(module.Toy)
    assert declared[0].constraints == (settings.Positive,)


def test_a_plugin_without_settings_declares_nothing(tmp_path):
    class Plain:
        pass

    assert settings.declared(Plain) == []


# -- through the registry and the command line ----------------------------------------------
def cli(*args):
    from typer.testing import CliRunner

    from benchsuite.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def template_plugins(tmp_path):
    from tests.conftest import REPO

    folder = tmp_path / "plugins"
    folder.mkdir()
    source = (REPO / "docs" / "templates" / "method_template.py").read_text()
    (folder / "template_method.py").write_text(source)
    return folder


def test_typed_settings_reach_the_config_and_bad_values_stop_at_planning(template_plugins):
    from benchsuite.running.registry import discover

    plugin = discover([template_plugins]).method("template-method")
    assert [s.name for s in plugin.settings] == ["theta_clip"]
    assert plugin.cls.hyperparameters == {"theta_clip": 0.0}
    base = ["run", "--plugins", template_plugins, "--methods", "template-method",
            "--tasks", "sinusoid", "--dry-run"]
    assert cli(*base, "--set", "template-method.theta_clip=0.5").exit_code == 0
    result = cli(*base, "--set", "template-method.theta_clip=-1")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: template-method × sinusoid (seed 0): theta_clip must be at least 0 "
        "(got -1.0)"]
    listing = cli("list", "--plugins", template_plugins, "--settings", "template-method")
    assert listing.exit_code == 0 and "Clip the adapted parameters" in listing.output


def test_a_method_key_that_repeats_a_task_key_stops_at_planning(template_plugins):
    path = template_plugins / "template_method.py"
    path.write_text(path.read_text().replace("theta_clip", "shots"))
    result = cli("run", "--plugins", template_plugins, "--methods", "template-method",
                 "--tasks", "sinusoid", "--dry-run")
    assert result.exit_code == 2
    assert "template-method declares shots, which sinusoid (or the runner) already has" in (
        result.output)


def test_an_undocumented_setting_makes_the_plugin_unavailable(template_plugins):
    from benchsuite.running.registry import discover

    path = template_plugins / "template_method.py"
    path.write_text(path.read_text().replace(
        '        """Clip the adapted parameters to [−c, c]; 0 clips nothing."""\n', ""))
    registry = discover([template_plugins])
    assert "template-method" not in registry.methods
    assert "theta_clip needs a docstring" in registry.unavailable[str(path)]


# -- every key declared once, engine keys included ---------------------------------------------
def test_every_key_of_every_planned_config_is_declared_exactly_once(registry):
    from benchsuite.running import planning
    from benchsuite.running.config import ENGINE_KEYS

    specs = planning.plan(registry, methods="all", tasks="sinusoid,quadratic,hypercleaning,"
                          "logistic,ridge", device="cpu", out=Path("/nonexistent"))
    for spec in specs:
        task = {s.name for s in registry.task(spec.task).settings}
        method = {s.name for s in registry.method(spec.method).settings}
        assert not (task & method) and not (task & ENGINE_KEYS) and not (method & ENGINE_KEYS)
        assert set(spec.config) <= ENGINE_KEYS | task | method, spec.label()


def test_engine_keys_are_checked_at_planning_with_their_declared_range(registry):
    from benchsuite.core.errors import UsageError
    from benchsuite.running import planning

    for item, message in (("meta_batch=0", "meta_batch must be at least 1 (got 0)"),
                          ("inner_lr=0", "inner_lr must be positive (got 0.0)"),
                          ("batching=both", "batching must be one of vmap, loop"),
                          ("meta_lr=nan", "meta_lr must be a finite number")):
        with pytest.raises(UsageError, match=re.escape(message)):
            planning.plan(registry, methods="maml", tasks="quadratic", device="cpu",
                          set_items=[item])


def test_a_method_that_does_not_meta_train_runs_no_iterations_whatever_the_options(registry):
    from benchsuite.running import planning

    specs = planning.plan(registry, methods="scratch,maml", tasks="sinusoid", device="cpu",
                          options={"iterations": 300}, set_items=["sinusoid.iterations=400"])
    iterations = {s.method: s.config["iterations"] for s in specs}
    assert iterations == {"scratch": 0, "maml": 400}
    assert registry.method("scratch").cls.meta_trains is False
    assert "iterations" not in registry.method("scratch").cls.task_overrides


def test_a_task_default_no_settings_declare_makes_the_task_unavailable(tmp_path):
    from benchsuite.running.registry import discover
    from tests.conftest import REPO

    source = (REPO / "tasks" / "sinusoid.py").read_text().replace(
        'name = "sinusoid"', 'name = "sinusoid-typo"').replace(
        '"eval_inner_steps": 1,', '"eval_inner_step": 1,')
    (tmp_path / "typo.py").write_text(source)
    registry = discover([tmp_path])
    assert "sinusoid-typo" not in registry.tasks
    assert "['eval_inner_step'], which neither its Settings nor the engine's" in (
        registry.unavailable[str(tmp_path / "typo.py")])


STEP_METHOD = '''
from dataclasses import dataclass

from benchsuite.methods.implicit_neumann import ImplicitNeumann
from benchsuite.core.functional import neumann_series
from benchsuite.core.settings import Annotated, AtLeast, Positive


class SeriesStep(ImplicitNeumann):
    """A Neumann series with a step of its own."""

    name = "series-step"
    inner_step_keys = ("inner_lr", "series_lr")
    seen: list = []

    @dataclass(frozen=True)
    class Settings:
        neumann_terms: Annotated[int, AtLeast(1)] = 10
        """J, the terms of the series."""
        series_lr: Annotated[float, Positive] = 0.05
        """The series' own step size."""

    def solve(self, apply_hessian, rhs):
        type(self).seen.append(self.config["series_lr"])
        return neumann_series(apply_hessian, rhs, self.config["neumann_terms"],
                              self.config["series_lr"])
'''


def test_a_new_step_size_setting_is_listed_checked_by_every_command_and_reaches_the_trial(
        tmp_path, monkeypatch):
    """One file adds the setting: `list --settings` shows it, run, sweep and tune plan
    and check it, and the trial reads it typed."""
    from benchsuite.core.errors import UsageError
    from benchsuite.running import planning, protocols, sweep, tune
    from benchsuite.running.registry import discover
    from benchsuite.running.trial import run_trial

    monkeypatch.setenv("BENCHSUITE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "series_step.py").write_text(STEP_METHOD)
    listing = cli("list", "--plugins", folder, "--settings", "series-step")
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if line.startswith("series_lr"))
    assert row.split()[:5] == ["series_lr", "float,", ">", "0", "0.05"] and "method" in row
    assert "inner_lr" in listing.output and "engine" in listing.output

    registry = discover([folder])
    bad = ["series-step.series_lr=-1"]
    message = "series_lr must be positive (got -1.0)"
    with pytest.raises(UsageError, match=re.escape(message)):
        planning.plan(registry, methods="series-step", tasks="quadratic", device="cpu",
                      set_items=bad)
    with pytest.raises(UsageError, match=re.escape(message)):
        sweep.plan_sweep(registry, methods="series-step", tasks="quadratic", seed=0,
                         device="cpu", set_items=bad)
    with pytest.raises(UsageError, match=re.escape(message)):
        tune.plan_tuning(registry, methods="series-step", tasks="quadratic", seeds=1,
                         budget="quick", device="cpu", options={}, set_items=bad,
                         out=tmp_path / "tune", protocols=protocols.load())
    jobs = tune.plan_tuning(registry, methods="series-step", tasks="quadratic", seeds=1,
                            budget="quick", device="cpu", options={}, set_items=[],
                            out=tmp_path / "tune", protocols=protocols.load())
    assert [point["series_lr"] for point in jobs[0].grid] == [0.05, 0.05, 0.0125, 0.0125]
    (spec,) = planning.plan(registry, methods="series-step", tasks="quadratic", device="cpu",
                            options={"iterations": 1}, set_items=["series_lr=0.02"])
    cls = registry.method("series-step").cls
    run_trial(cls, registry.task("quadratic").cls,
              {**spec.config, "test_episodes": 1, "val_episodes": 1, "curve_points": 1})
    assert cls.seen and set(cls.seen) == {0.02} and isinstance(cls.seen[0], float)


def test_list_settings_shows_the_engine_keys_a_method_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHSUITE_CACHE", str(tmp_path / "cache"))
    listing = cli("list", "--settings", "maml")
    assert listing.exit_code == 0
    rows = {line.split()[0]: line for line in listing.output.splitlines()[3:]
            if line and not line.startswith(" ")}
    assert {"inner_lr", "inner_steps", "meta_lr", "meta_batch", "iterations",
            "eval_inner_steps", "batching"} <= set(rows)
    assert "(the task's)" in rows["inner_lr"] and "engine" in rows["inner_lr"]
    scratch = cli("list", "--settings", "scratch").output
    assert "0 (no training)" in scratch and "step_grid" in scratch
    assert max(map(len, scratch.splitlines())) <= 100
