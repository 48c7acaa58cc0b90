"""Typed plugin settings (benchsuite.core.settings): field docstrings read from the source,
values checked against their annotations, defaults and descriptions."""

import importlib.util
import sys
import textwrap

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
    assert [s.name for s in plugin.settings] == ["inner_grad_clip"]
    assert plugin.cls.hyperparameters == {"inner_grad_clip": 0.0}
    base = ["run", "--plugins", template_plugins, "--methods", "template-method",
            "--tasks", "sinusoid", "--dry-run"]
    assert cli(*base, "--set", "template-method.inner_grad_clip=0.5").exit_code == 0
    result = cli(*base, "--set", "template-method.inner_grad_clip=-1")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: template-method × sinusoid (seed 0): inner_grad_clip must be at least 0 "
        "(got -1.0)"]
    listing = cli("list", "--plugins", template_plugins, "--settings", "template-method")
    assert listing.exit_code == 0 and "Clip the adapted parameters" in listing.output


def test_a_method_key_that_repeats_a_task_key_stops_at_planning(template_plugins):
    path = template_plugins / "template_method.py"
    path.write_text(path.read_text().replace("inner_grad_clip", "shots"))
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
    assert "inner_grad_clip needs a docstring" in registry.unavailable[str(path)]
