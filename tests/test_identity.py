"""Record identity: a trial is current only while the code of its plugin files and of every
engine module it runs through is unchanged (comments, docstrings and module places aside)."""

import shutil

import pytest

from benchsuite.reporting import frame
from benchsuite.running import planning
from benchsuite.storage import identity
from benchsuite.storage.identity import engine_files, imported_engine_modules
from benchsuite.storage.records import new_record


def names(paths):
    return sorted(p.name for p in paths)


def test_engine_files_follow_imports_and_leave_out_tools(registry):
    maml, sinusoid, omniglot = (registry.method("maml"), registry.task("sinusoid"),
                                registry.task("omniglot"))
    regression = names(engine_files([*maml.files, *sinusoid.files]))
    assert {"trial.py", "functional.py", "execution.py", "contract.py", "measure.py",
            "models.py"} <= set(regression)
    assert not {"cli.py", "report.py", "runner.py", "verify.py"} & set(regression)
    # the few-shot machinery belongs only to the trials that run through it
    assert "fewshot.py" not in regression
    assert "fewshot.py" in names(engine_files([*maml.files, *omniglot.files]))


def test_imports_are_read_from_the_source(tmp_path):
    module = tmp_path / "plugin.py"
    module.write_text("import benchsuite.blocks.models\nfrom benchsuite.core import seeding\n"
                      "from benchsuite.core.functional import tree_add\nimport torch\n")
    assert names(imported_engine_modules(module)) == ["functional.py", "models.py",
                                                      "seeding.py"]


def plan_one(registry, out):
    return planning.plan(registry, methods="maml", tasks="sinusoid", seeds=1, budget="quick",
                       device="cpu", options={}, set_items=[], out=out)[0]


def test_an_engine_edit_gives_new_trial_ids_and_marks_older_records(registry, tmp_path,
                                                                    monkeypatch):
    before = plan_one(registry, tmp_path)
    assert set(before.code) == {"method", "task", "engine"}
    record = new_record(before, "finished")
    assert not frame.is_stale(record, registry)

    # the same engine with one statement changed in the trial loop
    edited = tmp_path / "trial.py"
    shutil.copy(identity.TRIAL_LOOP, edited)
    edited.write_text(edited.read_text() + "\nEDITED = True\n")
    monkeypatch.setattr(identity, "TRIAL_LOOP", edited)

    after = plan_one(registry, tmp_path)
    assert after.code["engine"] != before.code["engine"]
    assert after.trial_id != before.trial_id and after.path != before.path  # run re-runs
    assert frame.is_stale(record, registry)                             # "older code"


def test_comments_docstrings_and_blank_lines_are_not_code(tmp_path):
    original = tmp_path / "a.py"
    original.write_text('"""Doc."""\nimport torch\n\n\ndef f(x):\n    return x + 1\n')
    reworded = tmp_path / "b.py"
    reworded.write_text('"""Other words."""\nimport torch  # why\n\ndef f(x):\n'
                        '    """What f does."""\n    # a comment\n    return x + 1\n')
    changed = tmp_path / "c.py"
    changed.write_text('"""Doc."""\nimport torch\n\n\ndef f(x):\n    return x + 2\n')
    assert identity.code_hash(original) == identity.code_hash(reworded)
    assert identity.code_hash(original) != identity.code_hash(changed)


def test_an_engine_module_moved_elsewhere_keeps_the_identity(tmp_path, monkeypatch):
    """Moving a module into a subpackage and importing it from there changes no code."""
    package = tmp_path / "benchsuite"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core" / "__init__.py").write_text('"""The core layer."""\n')
    helper = "def twice(x):\n    return 2 * x\n"
    user = tmp_path / "plugin.py"
    monkeypatch.setattr(identity, "ENGINE", package)

    (package / "helpers.py").write_text(helper)
    user.write_text("from benchsuite.helpers import twice\n\nY = twice(3)\n")
    before = identity.code_hash(user)
    (package / "helpers.py").unlink()
    (package / "core" / "helpers.py").write_text(helper)
    user.write_text("from benchsuite.core.helpers import twice\n\nY = twice(3)\n")
    assert identity.code_hash(user) == before
    assert identity.imported_engine_modules(user) == {package / "core" / "helpers.py"}

    # ...while a change inside the moved module is a change of the importer's identity
    (package / "core" / "helpers.py").write_text(helper.replace("2 * x", "3 * x"))
    assert identity.code_hash(user) != before


@pytest.mark.parametrize("code", [{"method": "x", "task": "y"}, {}])
def test_records_without_the_engine_hash_are_never_current(registry, tmp_path, code):
    record = {**new_record(plan_one(registry, tmp_path), "finished"), "code": code}
    assert frame.is_stale(record, registry)
