"""`benchsuite migrate`: a code change that leaves a trial's numbers as they were re-keys
its record (so `run` finds it and `verify` checks it); one that changes them leaves the
record stale."""

import sys
from pathlib import Path

from benchsuite.storage.records import read_record
from tests.test_reliability import TINY, cli, plugin_folder

TOY = ("from benchsuite.methods.maml import MAML\n\n"
       "class Toy(MAML):\n    name, aliases = 'toy', ()\n")


def run_grid(plugins: Path, out: Path, monkeypatch) -> str:
    args = ["run", "--plugins", plugins, "--methods", "toy", "--seeds", 2, "--out", out,
            "--executor", "inline", *TINY]
    # the command a record stores is the process's own, as a shell would have run it
    monkeypatch.setattr(sys, "argv", ["benchsuite", *map(str, args)])
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def stored(out: Path) -> dict[Path, dict]:
    return {p: read_record(p) for p in sorted(out.rglob("*.json"))}


def test_a_refactor_that_keeps_the_numbers_is_migrated_and_then_kept(tmp_path, monkeypatch):
    plugins = plugin_folder(tmp_path / "plugins", toy=TOY)
    out = tmp_path / "out"
    run_grid(plugins, out, monkeypatch)
    before = stored(out)

    # a change of code (a new statement) that computes the same trial
    (plugins / "toy.py").write_text(TOY + "\nUNUSED = 1\n")
    stale = cli("verify", out, "--plugins", plugins, "--quick")
    assert stale.exit_code == 1 and "stale" in stale.stdout

    result = cli("migrate", out, "--plugins", plugins, "-q")
    assert result.exit_code == 0, result.output
    assert "2 records: 2 migrated" in result.stdout
    after = stored(out)
    assert len(after) == 2 and not set(after) & set(before)  # re-keyed: new ids, new files
    for record in after.values():
        old = next(r for r in before.values() if r["seed"] == record["seed"])
        assert record["metrics"] == old["metrics"] and record["curve"] == old["curve"]
        assert record["code"]["method"] != old["code"]["method"]
        [step] = record["migrations"]
        assert step["from_id"] == old["id"] and "(quick)" in step["checked"]

    # the records are now current: run keeps them, verify checks them, migrate leaves them
    assert "2 skipped: kept from earlier runs" in run_grid(plugins, out, monkeypatch)
    assert stored(out) == after
    assert cli("verify", out, "--plugins", plugins, "--quick").exit_code == 0
    assert "2 records: 2 current" in cli("migrate", out, "--plugins", plugins, "-q").stdout


def test_a_change_of_the_numbers_leaves_the_records_stale(tmp_path, monkeypatch):
    plugins = plugin_folder(tmp_path / "plugins", toy=TOY)
    out = tmp_path / "out"
    run_grid(plugins, out, monkeypatch)
    before = stored(out)

    # the same config, a different hypergradient: first-order instead of second
    (plugins / "toy.py").write_text(TOY.replace("from benchsuite.methods.maml import MAML",
                                                "from benchsuite.methods.fomaml import "
                                                "FOMAML as MAML"))
    result = cli("migrate", out, "--plugins", plugins, "-q")
    assert result.exit_code == 1
    assert "2 records: 2 MISMATCH" in result.stdout
    assert stored(out) == before


def test_a_key_the_record_ran_at_its_neutral_value_is_not_a_change():
    """A record made before `compile` existed holds it at "off" after its first migration;
    its command, re-planned, now gives the key's default: what ran is still "off"."""
    from benchsuite.running.migrate import changed_values

    planned = {"compile": "auto", "meta_lr": 0.001, "seed": 0}
    assert changed_values({"compile": "off", "meta_lr": 0.001, "seed": 0}, planned) == []
    assert changed_values({"meta_lr": 0.001, "seed": 0}, planned) == []  # before the key
    assert changed_values({"compile": "on", "meta_lr": 0.001, "seed": 0}, planned) == [
        "compile"]  # ran compiled: another trial
    assert changed_values({"compile": "off", "meta_lr": 0.01, "seed": 0}, planned) == [
        "meta_lr"]
