"""The differential checks of crosscheck/ (docs/crosscheck.md), in their quick versions: each
passes on the committed protocols, a check whose external package is missing is skipped
with the reason, and a deliberately wrong "ours" makes a check fail."""

import importlib

import pytest
import torch

from crosscheck import __main__ as cli
from crosscheck import core
from crosscheck.core import Check, Difference, Setting, relative_difference


def quick_check(name):
    try:
        return importlib.import_module(f"crosscheck.{name}").run(quick=True)
    except core.Unavailable as missing:
        pytest.skip(str(missing))


@pytest.mark.parametrize("name", cli.check_modules())
def test_every_check_passes_on_the_committed_protocols(name):
    check = quick_check(name)
    failing = [d for d in check.differences if not d.passed]
    assert check.passed, (failing, [s for s in check.settings if not (s.match or s.note)])


def halved_lambda(module, monkeypatch):
    """`module`'s view of our config with λ halved (a protocol that forgot Betty's missing
    ½, or the paper code's λ misread)."""
    real = core.protocol_config

    def wrong(*args, **kwargs):
        config = real(*args, **kwargs)
        return {**config, "proximal_lambda": config["proximal_lambda"] / 2}

    monkeypatch.setattr(module, "protocol_config", wrong)


@pytest.mark.parametrize("name", ["betty_imaml", "imaml_paper"])
def test_a_wrong_lambda_fails_the_check(name, monkeypatch):
    module = importlib.import_module(f"crosscheck.{name}")
    halved_lambda(module, monkeypatch)
    check = quick_check(name)
    assert not check.passed
    assert any(s.name.startswith("λ") or "regulariser" in s.name for s in check.settings
               if not s.match)
    assert any(not d.passed for d in check.differences if "meta-gradient" in d.quantity)


def test_relative_difference_over_tensors_and_dicts():
    a = {"w": torch.tensor([1.0, -4.0]), "b": torch.tensor([2.0])}
    b = {"w": torch.tensor([1.0, -3.5]), "b": torch.tensor([2.0])}
    assert relative_difference(a, b) == pytest.approx(0.5 / 3.5)
    assert relative_difference(torch.zeros(2), torch.zeros(2)) == 0.0


def test_a_check_passes_only_with_every_difference_within_tolerance():
    fine = Difference("x", 1e-9, 1e-5)
    setting = Setting("λ", "file:1", 0.02, 0.02, True)
    assert Check("p", "s", [setting], [fine], []).passed
    assert not Check("p", "s", [setting], [fine, Difference("y", 2e-5, 1e-5)], []).passed
    assert not Check("p", "s", [setting], [Difference("z", float("nan"), 1e-5)], []).passed
    assert not Check("p", "s", [setting], [], []).passed  # nothing measured
    odd = Setting("net", "file:2", "a", "b", False)
    assert not Check("p", "s", [odd], [fine], []).passed
    assert Check("p", "s", [Setting("net", "file:2", "a", "b", False, "why")], [fine],
                 []).passed


def test_the_report_is_written_and_the_exit_status_says_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "check_modules", lambda: ["fake"])
    fake = type("Fake", (), {})()
    outcome = {"check": Check("fake-protocol", "somewhere@abc", [
        Setting("λ", "f.py:3", 0.02, 0.02, True)], [Difference("g", 1e-12, 1e-5)],
        ["a reason"])}
    fake.run = lambda quick=False: outcome["check"]
    real_import = importlib.import_module
    monkeypatch.setattr(cli.importlib, "import_module",
                        lambda name: fake if name == "crosscheck.fake" else real_import(name))
    out = tmp_path / "CROSSCHECK.md"
    assert cli.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## fake-protocol: PASS" in text and "| λ | f.py:3 | 0.02 | 0.02 | yes |" in text
    assert "- a reason" in text and "somewhere@abc" in text
    outcome["check"] = Check("fake-protocol", "x", [], [Difference("g", 1.0, 1e-5)], [])
    assert cli.main(["--out", str(out)]) == 1
    assert "FAIL" in out.read_text()


def test_an_unwritable_report_path_stops_before_any_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "check_modules", lambda: pytest.fail("a check ran"))
    (tmp_path / "file").write_text("")
    assert cli.main(["--out", str(tmp_path / "file" / "CROSSCHECK.md")]) == 2
    assert cli.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is not a folder" in err[0] and "is a folder" in err[1]
