"""The catalog of `benchsuite list` read from the plugins' source equals the one built by
importing them; what the source reader cannot settle falls back to importing; a cold
`list` never imports torch."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from benchsuite.running import catalog, static_catalog
from benchsuite.running.source_eval import Unresolvable
from tests.conftest import REPO

# plugins that exercise what the reader follows: a method subclassing a built-in method of
# another file, with its own Settings (its parent's keys dropped) and an incompatibility
# built on its parent's; a method inheriting its parent's Settings; a task on a base in
# benchsuite/blocks with typed keys of every kind; a task subclassing a built-in task; a
# class without a name; and a task the registry rejects (unavailable)
EXTRA = {
    "proximal_plus.py": '''
        """A test method: iMAML with a damping key of its own."""
        from dataclasses import dataclass
        from typing import Literal

        from benchsuite.core.contract import META_INIT
        from benchsuite.core.settings import Annotated, AtLeast, Positive
        from benchsuite.methods.imaml import IMAML

        SCALES = tuple(2 ** k for k in range(3))


        class ProximalPlus(IMAML):
            name = "proximal-plus"
            aliases = ("pp",)
            paper = "a test"
            task_overrides = {"meta_chunk": 2, "meta_lr_schedule": "cosine"}
            accuracy_knob = "cg_steps"

            @dataclass(frozen=True)
            class Settings:
                cg_steps: Annotated[int, AtLeast(1)] = 3
                """CG steps."""
                proximal_lambda: Annotated[float, Positive] = SCALES[-1] / 2
                """λ."""
                solver: Literal["cg", "neumann"] = "cg"
                """Which solver."""
                scales: tuple[int, ...] = SCALES
                """Scales tried."""

            @classmethod
            def incompatibility(cls, task):
                reason = super().incompatibility(task)
                if reason is None and not task.head_keys:
                    reason = f"{cls.name} needs a head; {task.name!r} has none ({task.kind})"
                return reason


        class ProximalFloor(ProximalPlus):
            name = "proximal-floor"
            aliases = ()
            meta_trains = False
        ''',
    "wavy.py": '''
        import math
        from dataclasses import dataclass
        from typing import Literal

        from benchsuite.blocks.regression import MLPRegression
        from benchsuite.core.contract import HYPERPARAMETER
        from benchsuite.core.settings import Annotated, AtLeast, Fraction
        from benchsuite.tasks.sinusoid import Sinusoid

        BASE = {"inner_steps": 2, "inner_lr": 0.05, "meta_batch": 4, "meta_lr": 1e-3,
                "iterations": 100}


        class Helper:
            """No plugin: not a Method or a Task."""


        class WavyBase(MLPRegression):
            """No name: not registered, but its Settings are inherited."""

            @dataclass(frozen=True)
            class Settings:
                hidden: Annotated[int, AtLeast(1)] = 8
                """Width."""
                phase: float = math.pi / 4
                """Phase."""
                noise: Annotated[float, Fraction] = 0.0
                """Noise share."""
                inputs: Literal["grid", "uniform"] = "grid"
                """Where x lies."""
                steps: tuple[int, ...] = tuple(range(1, 4))
                """Steps."""
                flag: bool = False
                """A flag."""


        class Wavy(WavyBase):
            name = "wavy"
            paper = "a test task"
            defaults = {**BASE, "eval_steps": (1, 2)}
            quick = {key: value // 10 for key, value in BASE.items() if key == "iterations"}


        class ShortSinusoid(Sinusoid):
            name = "short-sinusoid"
            kind = HYPERPARAMETER
            defaults = {**Sinusoid.defaults, "iterations": 10}
        ''',
    "rejected.py": '''
        from benchsuite.core.contract import META_INIT, Task


        class Rejected(Task):
            name = "rejected"
            kind = META_INIT
            metric = "mse"
            higher_is_better = False
            defaults = {"inner_steps": 1}
        ''',
}


def write_plugins(folder, files):
    folder.mkdir()
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source))
    return folder


def test_the_builtin_plugins_read_from_source_list_as_imported():
    read = static_catalog.read()
    assert read == catalog.build()
    assert {m["name"] for m in read["methods"]} >= {"maml", "anil", "transfer", "mtnet"}
    assert json.loads(json.dumps(read)) == read  # plain data: the cache keeps it as it is


def test_extra_plugins_with_subclasses_and_settings_read_as_imported(tmp_path):
    folder = write_plugins(tmp_path / "plugins", EXTRA)
    read = static_catalog.read([folder])
    assert read == catalog.build([folder])
    methods = {m["name"]: m for m in read["methods"]}
    tasks = {t["name"]: t for t in read["tasks"]}
    plus = [row[:3] for row in methods["proximal-plus"]["settings"] if row[3] == "method"]
    assert plus == [["cg_steps", "int, ≥ 1", "3"], ["proximal_lambda", "float, > 0", "2.0"],
                    ["solver", "'cg' | 'neumann'", "'cg'"],
                    ["scales", "tuple of int", "(1, 2, 4)"]]  # iMAML's other keys dropped
    assert methods["proximal-plus"]["aliases"] == ["pp"]
    assert [r for r in methods["proximal-floor"]["settings"] if r[0] == "iterations"][0][2] == (
        "0 (no training)")
    assert tasks["wavy"]["defaults"]["phase"] == pytest.approx(0.7853981633974483)
    assert tasks["wavy"]["quick"] == {"iterations": 10}
    assert tasks["short-sinusoid"]["kind"] == "hyperparameter"
    assert read["compatible"]["omniglot"]["proximal-plus"] is None
    assert read["compatible"]["wavy"]["proximal-plus"] is None  # a property: truthy
    assert read["compatible"]["short-sinusoid"]["proximal-plus"].startswith("proximal-plus ")
    assert "lacks defaults" in read["unavailable"][str(folder / "rejected.py")]


UNSETTLED = {
    "arbitrary-incompatibility": '''
        import hashlib
        from benchsuite.methods.maml import MAML

        class Hashed(MAML):
            name = "hashed"
            aliases = ()

            @classmethod
            def incompatibility(cls, task):
                if hashlib.sha256(task.name.encode()).digest()[0] % 2:
                    return "odd"
                return None
        ''',
    "computed-default": '''
        import os
        from dataclasses import dataclass
        from benchsuite.methods.maml import MAML

        class Computed(MAML):
            name = "computed"
            aliases = ()

            @dataclass(frozen=True)
            class Settings:
                workers: int = os.cpu_count() or 1
                """Workers."""
        ''',
    "dynamic-base": '''
        from benchsuite.methods.maml import MAML

        class Dynamic(type("Base", (MAML,), {"aliases": ()})):
            name = "dynamic"
        ''',
    "settings-twice": '''
        from dataclasses import dataclass
        from benchsuite.methods.maml import MAML

        class Twice(MAML):
            name = "twice"
            aliases = ()
            hyperparameters = {"clip": 1.0}

            @dataclass(frozen=True)
            class Settings:
                clip: float = 0.0
                """Clip."""
        ''',
    "missing-module": '''
        import no_such_module_anywhere
        ''',
    "syntax-error": '''
        def broken(:
        ''',
}


@pytest.mark.parametrize("case", sorted(UNSETTLED))
def test_what_the_reader_cannot_settle_is_listed_by_importing(tmp_path, monkeypatch, case):
    monkeypatch.setenv("BENCHSUITE_CACHE", str(tmp_path / "cache"))
    folder = write_plugins(tmp_path / "plugins", {"plugin.py": UNSETTLED[case]})
    with pytest.raises(Unresolvable):
        static_catalog.read([folder])
    listed = catalog.catalog([folder])
    assert listed == catalog.build([folder])
    if case == "arbitrary-incompatibility":
        assert {reasons["hashed"] for reasons in listed["compatible"].values()} == {None, "odd"}
    if case == "settings-twice":  # the import fails: settings.adopt refuses the class
        assert "both in Settings and in hyperparameters" in listed["unavailable"][
            str(folder / "plugin.py")]
    if case == "missing-module":
        assert "no_such_module_anywhere" in listed["unavailable"][str(folder / "plugin.py")]
    if case == "syntax-error":
        assert "SyntaxError" in listed["unavailable"][str(folder / "plugin.py")]
    assert len(list((tmp_path / "cache").glob("catalog-*.json"))) == 1


def test_a_cold_list_imports_no_torch(tmp_path):
    code = textwrap.dedent("""
        import sys
        from typer.testing import CliRunner
        from benchsuite.cli import app

        result = CliRunner().invoke(app, ["list"])
        assert result.exit_code == 0, result.output
        assert "Compatible pairs" in result.output
        print(sorted(m for m in ("torch", "numpy", "pandas") if m in sys.modules))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCHSUITE_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert len(list(tmp_path.glob("catalog-*.json"))) == 1  # it was cold, and is cached
