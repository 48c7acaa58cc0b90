"""Reproducible CUDA trials and GPU provenance, tested on the CPU: the settings functions
are called with a CUDA device name (they change only global flags and the environment,
which needs no GPU) and CUDA's presence is faked with monkeypatch where needed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from benchsuite.cli import app
from benchsuite.running import planning
from benchsuite.storage import reproducibility
from benchsuite.storage.records import provenance
from benchsuite.storage.reproducibility import CUBLAS_SETTING, CUBLAS_VARIABLE

GPU_FIELDS = ("gpu_name", "gpu_capability", "gpu_memory_bytes", "gpu_driver", "cuda_version",
              "cudnn_version", "determinism")


@pytest.fixture(autouse=True)
def restore_torch_flags():
    """Each test leaves PyTorch's global determinism flags as it found them."""
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


@pytest.fixture
def fake_cuda(monkeypatch):
    """Make this CPU machine report one (fake) H200 to the functions under test."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(
        name="NVIDIA H200", major=9, minor=0, total_memory=150_000_000_000))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(reproducibility, "cudnn_version", lambda: 91000)
    monkeypatch.setattr(reproducibility, "driver_version", lambda: "570.86.15")


def test_config_entries_only_for_cuda():
    assert reproducibility.config_entries("cuda", nondeterministic=False) == {
        "deterministic": True}
    assert reproducibility.config_entries("cuda:1", nondeterministic=True) == {
        "deterministic": False}
    assert reproducibility.config_entries("cpu", nondeterministic=False) == {}
    assert reproducibility.config_entries("cpu", nondeterministic=True) == {}


def test_apply_on_cuda_sets_env_and_flags():
    environ: dict[str, str] = {}
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    state = reproducibility.apply(torch.device("cuda"), {"deterministic": True}, environ)
    assert environ[CUBLAS_VARIABLE] == CUBLAS_SETTING == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert state == {"deterministic_algorithms": True, "cudnn_deterministic": True,
                     "cudnn_benchmark": False, "cublas_workspace_config": ":4096:8"}


def test_apply_defaults_to_deterministic_and_keeps_a_user_setting():
    environ = {CUBLAS_VARIABLE: ":16:8"}
    state = reproducibility.apply("cuda", {}, environ)  # a config without the key
    assert environ[CUBLAS_VARIABLE] == ":16:8"
    assert state["deterministic_algorithms"] and state["cublas_workspace_config"] == ":16:8"


def test_nondeterministic_opt_out_restores_pytorch_defaults():
    environ: dict[str, str] = {}
    reproducibility.apply("cuda", {"deterministic": True}, environ)
    environ.clear()
    state = reproducibility.apply("cuda", {"deterministic": False}, environ)
    assert CUBLAS_VARIABLE not in environ
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is False
    assert torch.backends.cudnn.benchmark is False
    assert state["cublas_workspace_config"] is None


def test_apply_on_cpu_changes_nothing():
    environ: dict[str, str] = {}
    torch.use_deterministic_algorithms(False)
    assert reproducibility.apply(torch.device("cpu"), {"deterministic": True}, environ) == {}
    assert environ == {}
    assert not torch.are_deterministic_algorithms_enabled()


def test_apply_notes_a_cublas_setting_made_after_cuda_started(monkeypatch):
    monkeypatch.setattr(reproducibility, "_cublas_set_late", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert "cublas_set_after_cuda_init" not in reproducibility.apply(
        "cuda", {}, {CUBLAS_VARIABLE: ":4096:8"})
    assert reproducibility.apply("cuda", {}, {})["cublas_set_after_cuda_init"] is True
    # the process keeps the note: provenance, read after the trial, reports it
    assert reproducibility.settings({})["cublas_set_after_cuda_init"] is True


def test_prepare_environment():
    environ: dict[str, str] = {}
    assert reproducibility.prepare_environment(True, environ)
    assert environ == {CUBLAS_VARIABLE: ":4096:8"}
    assert not reproducibility.prepare_environment(False, {})
    assert not reproducibility.prepare_environment(True, {CUBLAS_VARIABLE: ":0:0"})


def test_cuda_provenance_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert reproducibility.cuda_provenance("cpu") == {}
    assert reproducibility.cuda_provenance("cuda") == {}
    record = provenance(torch.device("cpu"))
    assert not set(GPU_FIELDS) & set(record)
    assert record["device"] == "cpu"


def test_cuda_provenance_names_gpu_driver_cuda_cudnn(fake_cuda, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    reproducibility.apply("cuda", {}, {})
    record = provenance(torch.device("cuda"))
    assert {k: record[k] for k in GPU_FIELDS[:-1]} == {
        "gpu_name": "NVIDIA H200", "gpu_capability": "9.0",
        "gpu_memory_bytes": 150_000_000_000, "gpu_driver": "570.86.15",
        "cuda_version": "12.8", "cudnn_version": 91000}
    assert record["device_name"] == "NVIDIA H200"
    assert record["determinism"]["deterministic_algorithms"] is True


def test_driver_version_from_nvidia_smi_or_none(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    monkeypatch.setattr(reproducibility.shutil, "which", lambda name: None)
    reproducibility.driver_version.cache_clear()
    assert reproducibility.driver_version() is None

    def fake_smi(args, **kwargs):
        assert args[1] == "--query-gpu=driver_version"
        return subprocess.CompletedProcess(args, 0, stdout="570.86.15\n570.86.15\n")

    monkeypatch.setattr(reproducibility.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(reproducibility.subprocess, "run", fake_smi)
    reproducibility.driver_version.cache_clear()
    assert reproducibility.driver_version() == "570.86.15"

    def failing_smi(args, **kwargs):
        raise subprocess.TimeoutExpired(args, 10)

    monkeypatch.setattr(reproducibility.subprocess, "run", failing_smi)
    reproducibility.driver_version.cache_clear()
    assert reproducibility.driver_version() is None
    reproducibility.driver_version.cache_clear()


def _plan(registry, device: str, nondeterministic: bool, out: Path):
    return planning.plan(registry, methods="maml", tasks="sinusoid", seeds=1, budget="quick",
                       device=device, options={"iterations": 2, "meta_batch": None},
                       set_items=[], out=out, nondeterministic=nondeterministic)


def test_choice_is_in_config_and_identity_of_cuda_trials(registry, fake_cuda, tmp_path):
    [deterministic] = _plan(registry, "cuda", False, tmp_path)
    [opted_out] = _plan(registry, "cuda", True, tmp_path)
    assert deterministic.config["deterministic"] is True
    assert opted_out.config["deterministic"] is False
    assert deterministic.trial_id != opted_out.trial_id
    assert deterministic.path != opted_out.path


def test_cpu_trials_keep_their_identity(registry, tmp_path):
    [plain] = _plan(registry, "cpu", False, tmp_path)
    [flagged] = _plan(registry, "cpu", True, tmp_path)
    assert "deterministic" not in plain.config
    assert plain.trial_id == flagged.trial_id


def test_run_trial_applies_the_settings_first(registry, monkeypatch):
    from benchsuite.running import trial

    seen = []

    class Stop(Exception):
        pass

    def spy(device, config):
        seen.append((device, dict(config)))
        raise Stop

    monkeypatch.setattr(trial.reproducibility, "apply", spy)
    config = {"device": "cpu", "seed": 0, "deterministic": True}
    with pytest.raises(Stop):
        trial.run_trial(registry.method("maml").cls, registry.task("sinusoid").cls, config)
    assert seen == [(torch.device("cpu"), config)]


def test_cli_passes_nondeterministic(monkeypatch, tmp_path):
    calls = []
    real_plan = planning.plan

    def recording_plan(*args, **kwargs):
        calls.append(kwargs.get("nondeterministic"))
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(planning, "plan", recording_plan)
    monkeypatch.setenv(CUBLAS_VARIABLE, "restored-to-absent-after-the-test")
    monkeypatch.delenv(CUBLAS_VARIABLE)
    arguments = ["run", "--methods", "maml", "--tasks", "sinusoid", "--device", "cpu",
                 "--dry-run", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, [*arguments, "--nondeterministic"])
    assert result.exit_code == 0, result.output
    assert CUBLAS_VARIABLE not in os.environ
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert os.environ.get(CUBLAS_VARIABLE) == ":4096:8"
    assert calls == [True, False]


# -- the GPU check's helpers (benchmarks/gpu_check.py), on the CPU ------------------------------
def test_record_comparison_ignores_wall_clock_only():
    from benchmarks.gpu_check import comparable, differences

    record = {"id": "a", "status": "finished", "error": None, "config": {"seed": 0},
              "metrics": {"mse": 0.5, "nan": float("nan")}, "timing": {"total_s": 1.0},
              "curve": [{"iteration": 0, "val_mse": 1.0, "train_time_s": 0.1}]}
    rerun = {**record, "timing": {"total_s": 2.0},
             "curve": [{"iteration": 0, "val_mse": 1.0, "train_time_s": 0.3}]}
    assert differences(comparable(record), comparable(rerun)) == []
    changed = {**rerun, "metrics": {"mse": 0.5000001, "nan": float("nan")}}
    assert differences(comparable(record), comparable(changed)) == [
        ".metrics.mse: 0.5 vs 0.5000001"]


def test_learn2learn_init_made_import_tolerant(tmp_path):
    from benchmarks.gpu_check import make_import_tolerant

    package = tmp_path / "fakel2l"
    (package / "good").mkdir(parents=True)
    (package / "good" / "__init__.py").write_text("VALUE = 1\n")
    (package / "bad").mkdir()
    (package / "bad" / "__init__.py").write_text("import module_that_is_absent_here\n")
    (package / "_version.py").write_text("__version__ = '0.2.0'\n")
    (package / "__init__.py").write_text(
        "from ._version import __version__\nfrom . import good\nfrom . import bad\n")
    make_import_tolerant(package / "__init__.py")
    make_import_tolerant(package / "__init__.py")  # idempotent
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("fakel2l")
        assert module.good.VALUE == 1 and module.__version__ == "0.2.0"
        assert "module_that_is_absent_here" in module._unavailable["bad"]
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("fakel2l")]:
            del sys.modules[name]
