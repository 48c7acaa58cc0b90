"""Reproducible CUDA trials, and the GPU part of a record's provenance.

On CUDA a trial runs deterministically by default: `torch.use_deterministic_algorithms`,
`CUBLAS_WORKSPACE_CONFIG=:4096:8` (cuBLAS needs a fixed workspace to give the same sums
run after run; it is read when the first cuBLAS handle is made, so it must be in the
environment before the trial's first matrix product), cuDNN restricted to deterministic
algorithms and no cuDNN autotuning (`benchmark`, which may pick a different algorithm
each run). `benchsuite run --nondeterministic` opts out: the trial then runs with
PyTorch's defaults. The choice is the config key `deterministic` of CUDA trials, so it is
part of the trial's identity (a deterministic and a non-deterministic run of the same
trial are different records) and `benchsuite verify` re-runs a record with the setting it
was made with. CPU trials have no such key: the CPU kernels this suite uses are
deterministic already (same command, same numbers), and their ids stay as they were.

An operation with no deterministic CUDA implementation raises a RuntimeError under these
settings; the trial is then recorded as failed with that message, and `--nondeterministic`
runs it.

Provenance: a CUDA record names the GPU, its compute capability and memory, the NVIDIA
driver version (from NVML through `pynvml` when importable, else `nvidia-smi`, else null),
the CUDA version PyTorch was built with, the cuDNN version, and the determinism settings
the trial ran under. A CPU record has none of these fields.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, MutableMapping

import torch

CONFIG_KEY = "deterministic"
CUBLAS_VARIABLE = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_SETTING = ":4096:8"
DETERMINISTIC_CUBLAS = (":4096:8", ":16:8")  # the two settings cuBLAS documents

_cublas_set_late = False  # this process set the variable only after CUDA had started


def _is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


def config_entries(device: str, nondeterministic: bool) -> dict[str, bool]:
    """The config keys a trial on `device` gets from the `--nondeterministic` choice: CUDA
    trials say whether they run deterministically; CPU trials get none."""
    return {CONFIG_KEY: not nondeterministic} if _is_cuda(device) else {}


def wants_determinism(config: Mapping) -> bool:
    """Whether a CUDA trial with this config runs deterministically (the default)."""
    return bool(config.get(CONFIG_KEY, True))


def prepare_environment(deterministic: bool,
                        environ: MutableMapping[str, str] | None = None) -> bool:
    """Put CUBLAS_WORKSPACE_CONFIG in this process's environment (so worker processes it
    starts have it from their first instruction) unless it is set already or determinism
    is not wanted. Returns whether the variable is now set to a deterministic value."""
    environ = os.environ if environ is None else environ
    if deterministic:
        environ.setdefault(CUBLAS_VARIABLE, CUBLAS_SETTING)
    return environ.get(CUBLAS_VARIABLE) in DETERMINISTIC_CUBLAS


def apply(device: torch.device | str, config: Mapping,
          environ: MutableMapping[str, str] | None = None) -> dict:
    """Set this process up for the trial about to run on `device` with `config`; call it
    before the trial's first CUDA operation. On CPU nothing changes and {} is returned; on
    CUDA the determinism settings (deterministic, or PyTorch's defaults with
    `deterministic: false`) are applied and returned as `settings()` gives them."""
    if not _is_cuda(device):
        return {}
    global _cublas_set_late
    environ = os.environ if environ is None else environ
    deterministic = wants_determinism(config)
    if (deterministic and CUBLAS_VARIABLE not in environ
            and torch.cuda.is_available() and torch.cuda.is_initialized()):
        _cublas_set_late = True  # a cuBLAS handle made before now keeps its workspace
    prepare_environment(deterministic, environ)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    return settings(environ)


def settings(environ: Mapping[str, str] | None = None) -> dict:
    """The determinism settings in force in this process."""
    environ = os.environ if environ is None else environ
    state = {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": environ.get(CUBLAS_VARIABLE),
    }
    if _cublas_set_late:
        state["cublas_set_after_cuda_init"] = True
    return state


@functools.cache
def driver_version() -> str | None:
    """The NVIDIA driver version, or None when neither NVML nor nvidia-smi tells it."""
    try:
        import pynvml  # optional: the nvidia-ml-py package
    except ImportError:
        pynvml = None
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            try:
                version = pynvml.nvmlSystemGetDriverVersion()
            finally:
                pynvml.nvmlShutdown()
            return version.decode() if isinstance(version, bytes) else str(version)
        except Exception:  # NVML missing or failing: try nvidia-smi
            pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def cudnn_version() -> int | None:
    try:
        return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except RuntimeError:
        return None


def cuda_provenance(device: torch.device | str) -> dict:
    """GPU name, capability and memory, driver, CUDA and cuDNN versions and the
    determinism settings, for a CUDA device; {} for any other device or without CUDA."""
    if not _is_cuda(device) or not torch.cuda.is_available():
        return {}
    properties = torch.cuda.get_device_properties(torch.device(device))
    return {
        "gpu_name": properties.name,
        "gpu_capability": f"{properties.major}.{properties.minor}",
        "gpu_memory_bytes": int(properties.total_memory),
        "gpu_driver": driver_version(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": cudnn_version(),
        "determinism": settings(),
    }
