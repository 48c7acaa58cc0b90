"""The prepared GPU check (issue 15), driven by benchmarks/gpu_check.sh; see docs/gpu.md.

    python3 benchmarks/gpu_check.py install --bundle .gpu-bundle --target DIR
    python3 -m benchmarks.gpu_check run --device cuda --work DIR --raw OUT

`install` puts learn2learn (and the pure-Python modules it and the runner import that the
machine lacks) into DIR from the folder tools/gpu_bundle.sh prepared, with no registry:
the sdist's C regenerated with this machine's Cython and built with `pip --no-deps`
(falling back to the C regenerated on the CPU machine, then to the cp312 wheel built there),
then its top-level `__init__` made to skip the subpackages whose imports are absent here
(gym, and vision, which needs scipy; benchsuite uses neither).

`run` measures, on the device: (a) our maml / fomaml against learn2learn's MAML on the
benchmark workloads (benchmarks/compare.py: interleaved timing in this process; peak
memory each in a fresh process, measured last with the time left), (b) a short seeded grid
run twice into two folders whose records are compared number for number, (c) `benchsuite
verify` on the first; and writes the report: reports/PERFORMANCE-cuda.md on CUDA (a
copy in the raw folder), only the raw folder's PERFORMANCE-cpu-rehearsal.md on any other
device (a rehearsal is never written as a CUDA report). Each part runs under a time
budget; its failure is reported, not fatal.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
L2L_VERSION = "0.2.0"
EXTENSIONS = ("meta_dataset", "task_dataset", "transforms")
PATCH_MARK = "# made import-tolerant by benchmarks/gpu_check.py"
# the targets on the GPU: (workload, ours) -> minimum speed-up over learn2learn's
# MAML of the same order; miniimagenet also at no more than its peak memory
GPU_TARGETS = {("miniimagenet", "maml"): 2.0, ("sinusoid", "maml"): 10.0}
MEMORY_TARGET_WORKLOADS = ("miniimagenet",)
VOLATILE_CURVE_KEYS = ("train_time_s",)  # wall-clock, not a result


# -- install -----------------------------------------------------------------------------------
def _run(command: list[str], log: list[str], **kwargs) -> bool:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    log.append(f"$ {' '.join(map(str, command))}  -> exit {done.returncode}")
    output = (done.stdout + done.stderr).strip()
    if output:
        log.append("\n".join(output.splitlines()[-15:]))
    return done.returncode == 0


def _extract_wheel(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)


def _module_of(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower()


def make_import_tolerant(init: Path) -> None:
    """Wrap each `from . import NAME` of learn2learn's top-level __init__ in try/except
    ImportError, keeping the error in `learn2learn._unavailable[NAME]`."""
    text = init.read_text()
    if PATCH_MARK in text:
        return
    text = re.sub(r"^from \. import (\w+)\n",
                  lambda m: (f"try:\n    from . import {m.group(1)}\n"
                             f"except ImportError as _error:\n"
                             f"    _unavailable[{m.group(1)!r}] = repr(_error)\n"),
                  text, flags=re.M)
    text = text.replace("from ._version import __version__\n",
                        f"from ._version import __version__\n\n{PATCH_MARK}\n"
                        "_unavailable = {}\n", 1)
    init.write_text(text)


def install(bundle: Path, target: Path) -> dict:
    """learn2learn and the missing pure-Python modules into `target`; returns what was done."""
    log: list[str] = []
    info: dict = {"target": str(target), "log": log}
    target.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    # rehearsing the fallbacks: "carried-c" skips this machine's Cython, "wheel" the build
    force = os.environ.get("GPU_CHECK_L2L_ROUTE", "")
    if not (target / "learn2learn" / "__init__.py").exists():
        build = Path(tempfile.mkdtemp(prefix="l2l-build-"))
        with tarfile.open(bundle / f"learn2learn-{L2L_VERSION}.tar.gz") as sdist:
            sdist.extractall(build, filter="data")
        src = build / f"learn2learn-{L2L_VERSION}"
        data = src / "learn2learn" / "data"
        cython = subprocess.run([python, "-m", "cython", "--version"], capture_output=True,
                                text=True)
        info["cython_here"] = ((cython.stdout + cython.stderr).strip().splitlines()
                               or [None])[0]
        regenerated = force not in ("carried-c", "wheel") and cython.returncode == 0 and all(
            _run([python, "-m", "cython", "-3", str(data / f"{m}.pyx"), "-o",
                  str(data / f"{m}.c")], log) for m in EXTENSIONS)
        if regenerated:
            info["c_source"] = f"regenerated here with {info['cython_here']}"
        else:
            for m in EXTENSIONS:
                shutil.copy(bundle / "l2l-c" / f"{m}.c", data / f"{m}.c")
            info["c_source"] = "carried (regenerated on the CPU machine with Cython < 3.1)"
        built = force != "wheel" and _run(
            [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
             "--no-index", "--target", str(target), str(src)], log)
        if built:
            info["route"] = f"sdist built here with pip --no-deps; C {info['c_source']}"
        else:
            wheels = sorted(bundle.glob("wheels/learn2learn-*-cp312-*.whl"))
            if not wheels:
                raise RuntimeError("learn2learn did not build here and no cp312 wheel is "
                                   "carried:\n" + "\n".join(log))
            _extract_wheel(wheels[0], target)
            why = "forced" if force == "wheel" else "the build here failed"
            info["route"] = f"carried wheel {wheels[0].name} ({why})"
        shutil.rmtree(build, ignore_errors=True)
    else:
        info["route"] = "already installed in the target"
    carried = []
    for wheel in sorted(bundle.glob("wheels/*-py3-none-any.whl")):
        module = _module_of(wheel)
        if importlib.util.find_spec(module) is None and not (target / module).exists():
            _extract_wheel(wheel, target)
            carried.append(wheel.name)
    info["pure_python_wheels"] = carried
    make_import_tolerant(target / "learn2learn" / "__init__.py")
    check = subprocess.run(
        [python, "-c", "import learn2learn as l, learn2learn.data.transforms, tqdm; "
                       "print(l.__version__, l.algorithms.MAML.__name__, l._unavailable)"],
        capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(target), *filter(None, [os.environ.get("PYTHONPATH")])])})
    info["import_check"] = (check.stdout + check.stderr).strip()
    info["import_ok"] = check.returncode == 0
    return info


# -- run ---------------------------------------------------------------------------------------
class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def environment(device: str) -> dict:
    import numpy
    import torch

    from benchsuite.storage import reproducibility
    from benchsuite.storage.records import cpu_model

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "numpy": numpy.__version__, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
           "device": device, "cuda_available": torch.cuda.is_available()}
    env.update(reproducibility.cuda_provenance(device))
    spec = importlib.util.find_spec("learn2learn")
    env["learn2learn_from"] = spec.origin if spec else None
    return env


def _contenders() -> list[str]:
    from benchmarks.workloads import contenders

    return contenders()


def timing(budget: Budget, raw: dict) -> None:
    """Interleaved timing of every contender on every workload (benchmarks/compare.py)."""
    from benchmarks import compare
    from benchmarks.workloads import REFERENCE_WORKLOADS
    from benchsuite.running.registry import discover

    registry = discover()
    names = raw["contenders"] = _contenders()
    results = raw.setdefault("timing", {})
    for workload in REFERENCE_WORKLOADS:
        if budget.left() < 60:
            results[workload] = {"skipped": "time budget"}
            continue
        start = time.monotonic()
        try:
            results[workload] = compare.interleaved(registry, workload, names,
                                                    count_flops=False)
        except Exception:
            results[workload] = {"error": traceback.format_exc(limit=6)}
        raw.setdefault("seconds", {})[f"timing {workload}"] = time.monotonic() - start


def memory(budget: Budget, raw: dict) -> None:
    """Peak memory of each contender on each workload, each in a fresh process, conv
    workloads first, while the budget lasts."""
    from benchmarks import compare
    from benchmarks.workloads import REFERENCE_WORKLOADS, WORKLOADS

    names = raw.get("contenders") or _contenders()
    found = raw.setdefault("memory", [])
    start = time.monotonic()
    for workload in sorted(REFERENCE_WORKLOADS,
                           key=lambda w: WORKLOADS[w].get("model") != "conv4"):
        for name in names:
            if budget.left() < 20:
                found.append({"workload": workload, "contender": name,
                              "skipped": "time budget"})
                continue
            try:
                found.append(compare.measure_fresh(workload, name,
                                                   timeout=max(15, budget.left() - 5)))
            except Exception:
                found.append({"workload": workload, "contender": name,
                              "error": traceback.format_exc(limit=4)})
    raw.setdefault("seconds", {})["memory"] = time.monotonic() - start


def grid_command(device: str, out: Path, data_root: Path | None, smoke: bool) -> list[str]:
    tasks = "sinusoid,omniglot" if data_root else "sinusoid"
    command = [sys.executable, "-m", "benchsuite", "run", "--methods", "maml,fomaml",
               "--tasks", tasks, "--seeds", "1", "--iterations", "10" if smoke else "50",
               "--device", device, "--out", str(out), "-q",
               "--set", "test_episodes=40" if smoke else "test_episodes=100",
               "--set", "val_episodes=10" if smoke else "val_episodes=20",
               "--set", "curve_points=5"]
    if data_root:
        command += ["--data-root", str(data_root), "--set", "omniglot.query=5"]
        if smoke:
            command += ["--set", "omniglot.meta_batch=4"]
    return command


def comparable(record: dict) -> dict:
    """What must be identical between two runs of a trial: everything but wall-clock,
    memory and provenance."""
    curve = [{k: v for k, v in point.items() if k not in VOLATILE_CURVE_KEYS}
             for point in record["curve"]]
    return {"id": record["id"], "status": record["status"], "error": record["error"],
            "config": record["config"], "metrics": record["metrics"], "curve": curve}


def differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                found.append(f"{where}.{key}: only in run {'2' if key not in a else '1'}")
            else:
                found += differences(a[key], b[key], f"{where}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} entries"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
    return [] if same else [f"{where}: {a!r} vs {b!r}"]


def compare_runs(first: Path, second: Path) -> dict:
    from benchsuite.storage.records import read_record

    paths = sorted(p.relative_to(first) for p in first.rglob("*.json"))
    others = sorted(p.relative_to(second) for p in second.rglob("*.json"))
    result = {"records": len(paths), "statuses": {}, "differences": []}
    if paths != others:
        result["differences"].append(f"different record files: {paths} vs {others}")
    for relative in paths:
        if not (second / relative).exists():
            continue
        a, b = read_record(first / relative), read_record(second / relative)
        result["statuses"][str(relative)] = a["status"]
        if a["status"] != "finished":
            result["differences"].append(f"{relative}: {a['status']}: {a['error']}")
        result["differences"] += [f"{relative}: {d}" for d in
                                  differences(comparable(a), comparable(b))]
    finished = [s for s in result["statuses"].values() if s == "finished"]
    result["verdict"] = ("identical" if paths and not result["differences"]
                         and len(finished) == len(paths) else "differences")
    return result


def reproducibility_check(budget: Budget, raw: dict, device: str, work: Path,
                          data_root: Path | None, smoke: bool, log) -> None:
    runs = [work / "run1", work / "run2"]
    raw["grid_command"] = " ".join(grid_command(device, Path("OUT"), data_root, smoke))
    for folder in runs:
        if budget.left() < 45:
            raw["reproducibility"] = {"verdict": "not run (time budget)"}
            return
        start = time.monotonic()
        done = subprocess.run(grid_command(device, folder, data_root, smoke), cwd=REPO,
                              capture_output=True, text=True, timeout=max(30, budget.left()))
        log(f"## {folder.name}: exit {done.returncode}\n{done.stdout}{done.stderr}")
        raw.setdefault("seconds", {})[f"grid {folder.name}"] = time.monotonic() - start
    raw["reproducibility"] = compare_runs(*runs)
    records = sorted(runs[0].rglob("*.json"))
    if records:
        record = json.loads(records[0].read_text())
        raw["record_provenance"] = record["provenance"]
        raw["record_config_deterministic"] = record["config"].get("deterministic")
    if budget.left() < 30:
        raw["verify"] = {"skipped": "time budget"}
        return
    start = time.monotonic()
    command = [sys.executable, "-m", "benchsuite", "verify", str(runs[0])]
    if data_root:
        command += ["--data-root", str(data_root)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          timeout=max(30, budget.left()))
    raw["verify"] = {"exit": done.returncode, "output": done.stdout.strip(),
                     "stderr_tail": "\n".join(done.stderr.strip().splitlines()[-5:])}
    raw.setdefault("seconds", {})["verify"] = time.monotonic() - start
    log(f"## verify: exit {done.returncode}\n{done.stdout}{done.stderr}")


# -- the report --------------------------------------------------------------------------------
def _ms(seconds) -> str:
    return f"{seconds * 1e3:.2f}" if isinstance(seconds, (int, float)) else "–"


def _mib(value) -> str:
    return f"{value / 2**20:.1f}" if isinstance(value, (int, float)) else "–"


def comparison_rows(raw: dict) -> list[list[str]]:
    from benchmarks.workloads import TARGET_REFERENCE

    peaks = {(m["workload"], m["contender"]): m.get("peak_bytes") for m in raw.get("memory", [])}
    rows = []
    for workload, results in raw.get("timing", {}).items():
        if "median_s" not in next(iter(results.values()), {}):
            reason = results.get("skipped") or "error (see raw.json)"
            rows.append([workload, "–", "–", "–", "–", "–", "–", "–", "–", reason])
            continue
        for ours, reference in TARGET_REFERENCE.items():
            if ours not in results:
                continue
            t_ours = results[ours]["median_s"]
            ref = results.get(reference, {})
            speedup = ref["median_s"] / t_ours if "median_s" in ref else None
            target = GPU_TARGETS.get((workload, ours))
            p_ours, p_ref = peaks.get((workload, ours)), peaks.get((workload, reference))
            verdicts = []
            if target is not None and speedup is not None:
                verdicts.append(f"speed {'met' if speedup >= target else 'MISSED'}")
            if workload in MEMORY_TARGET_WORKLOADS and ours == "maml" and p_ours and p_ref:
                verdicts.append(f"memory {'met' if p_ours <= p_ref else 'MISSED'}")
            rows.append([workload, ours, reference, _ms(t_ours), _ms(ref.get("median_s")),
                         f"{speedup:.2f}×" if speedup else "–",
                         f"≥ {target:g}×" if target else "–", _mib(p_ours), _mib(p_ref),
                         ", ".join(verdicts) or "–"])
    return rows


def write_report(raw: dict, path: Path) -> None:
    from tabulate import tabulate

    env = raw["environment"]
    cuda = env.get("gpu_name") is not None
    title = ("# Performance on CUDA" if cuda else
             "# GPU check rehearsal on the CPU (not a CUDA report)")
    lines = [title, "",
             f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} by "
             "`benchmarks/gpu_check.sh` (docs/gpu.md); raw numbers in its raw.json.", ""]
    if cuda:
        lines += [f"Device: {env['gpu_name']} (compute capability {env['gpu_capability']}, "
                  f"{env['gpu_memory_bytes'] / 2**30:.0f} GiB), driver {env['gpu_driver']}, "
                  f"CUDA {env['cuda_version']}, cuDNN {env['cudnn_version']}; "
                  f"torch {env['torch']}, Python {env['python']}, numpy {env['numpy']}; "
                  f"{env['cpu_count']} CPUs ({env['cpu']}).", ""]
    else:
        lines += [f"Device: {env['device']} ({env['cpu']}, {env['cpu_count']} CPUs); torch "
                  f"{env['torch']}, Python {env['python']}, numpy {env['numpy']}. This run "
                  "only rehearses the script: no figure here is a GPU measurement.", ""]
    install = raw.get("install", {})
    lines += [f"learn2learn {L2L_VERSION}: {install.get('route', 'see install.log')}; "
              f"import check: `{install.get('import_check', '–')}`.", ""]
    rows = comparison_rows(raw)
    lines += ["## Ours against learn2learn's MAML", "",
              "One meta-gradient per meta-step, median over interleaved rounds in one process "
              "(benchmarks/compare.py); peak memory of two meta-steps, each contender in a "
              "fresh process (allocator peak on CUDA). Timing runs under PyTorch's defaults "
              "(the benchmark sets no determinism flags). Contenders: "
              + ", ".join(raw.get("contenders", [])) + ".", "",
              tabulate(rows, ["workload", "ours", "reference", "ours ms", "reference ms",
                              "speed-up", "target", "ours peak MiB", "reference peak MiB",
                              "result"], tablefmt="github") if rows else "not measured", ""]
    memory = [[m["workload"], m["contender"], _mib(m.get("peak_bytes")), _ms(m.get("time_s")),
               m.get("path") or m.get("skipped") or (m.get("error") or "")[-80:]]
              for m in raw.get("memory", [])]
    if memory:
        lines += ["Peak memory per contender:", "",
                  tabulate(memory, ["workload", "contender", "peak MiB", "ms / step",
                                    "path or note"], tablefmt="github"), ""]
    repro = raw.get("reproducibility", {})
    lines += ["## Reproducibility", "",
              f"The grid `{raw.get('grid_command', '–')}` ran twice into two folders; the "
              "records' ids, statuses, configs, metrics (every per-episode score included) "
              "and learning curves (wall-clock left out) were compared.", "",
              f"Result: **{repro.get('verdict', 'not run')}** "
              f"({repro.get('records', 0)} records"
              + (f"; statuses {sorted(set(repro.get('statuses', {}).values()))}"
                 if repro.get("statuses") else "") + ").", ""]
    if repro.get("differences"):
        lines += ["Differences (first 30):", "", "```",
                  *repro["differences"][:30], "```", ""]
    if "record_provenance" in raw:
        prov = raw["record_provenance"]
        lines += [f"Record provenance: config `deterministic` = "
                  f"{raw.get('record_config_deterministic')}, determinism settings "
                  f"`{json.dumps(prov.get('determinism'))}`, GPU `{prov.get('gpu_name')}`, "
                  f"driver `{prov.get('gpu_driver')}`, CUDA `{prov.get('cuda_version')}`, "
                  f"cuDNN `{prov.get('cudnn_version')}`.", ""]
    verify = raw.get("verify", {})
    lines += ["## benchsuite verify (first run)", "",
              f"Exit {verify.get('exit', '–')}." if "exit" in verify
              else verify.get("skipped", "not run"), ""]
    if verify.get("output"):
        lines += ["```", verify["output"], "```", ""]
    seconds = raw.get("seconds", {})
    lines += ["Seconds per part: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
              + ".", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def run(args) -> int:
    os.environ["BENCH_DEVICE"] = args.device  # read by benchmarks.workloads at import
    if args.smoke:
        os.environ.setdefault("BENCH_SMOKE", "1")
        os.environ.setdefault("BENCH_ROUNDS", "2")
    import torch

    is_cuda = torch.device(args.device).type == "cuda"
    if is_cuda and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    budget = Budget(args.budget)
    raw_dir, work = Path(args.raw), Path(args.work)
    raw_dir.mkdir(parents=True, exist_ok=True)
    log_path = raw_dir / "commands.log"

    def log(text: str) -> None:
        with open(log_path, "a") as handle:
            handle.write(text.rstrip() + "\n")

    install_info = Path(args.install_info)
    raw: dict = {"environment": environment(args.device),
                 "install": json.loads(install_info.read_text())
                 if install_info.exists() else {}}
    raw["install"].pop("log", None)
    data_root = Path(args.data_root).resolve() if args.data_root else None
    parts = [("timing", lambda: timing(budget, raw)),
             ("reproducibility", lambda: reproducibility_check(
                 budget, raw, args.device, work, data_root, args.smoke, log)),
             ("memory", lambda: memory(budget, raw))]
    if args.skip_benchmark:
        parts = parts[1:2]
    for name, part in parts:
        try:
            part()
        except Exception:
            raw.setdefault("errors", {})[name] = traceback.format_exc(limit=8)
        (raw_dir / "raw.json").write_text(json.dumps(raw, indent=1, default=str))
    # a rehearsal's report goes to the raw folder only: nothing in reports/ but CUDA figures
    report = (REPO / "reports" / "PERFORMANCE-cuda.md" if is_cuda
              else raw_dir / "PERFORMANCE-cpu-rehearsal.md")
    write_report(raw, report)
    if report.parent != raw_dir:
        shutil.copy(report, raw_dir / report.name)
    with tarfile.open(raw_dir / "records.tar.gz", "w:gz") as archive:
        for folder in ("run1", "run2"):
            if (work / folder).is_dir():
                archive.add(work / folder, arcname=folder)
    print(f"wrote {report} (and {raw_dir}/raw.json); reproducibility: "
          f"{raw.get('reproducibility', {}).get('verdict', 'not run')}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="learn2learn and missing modules into --target")
    inst.add_argument("--bundle", type=Path, default=REPO / ".gpu-bundle")
    inst.add_argument("--target", type=Path, required=True)
    check = sub.add_parser("run", help="measure and write the report")
    check.add_argument("--device", default="cuda")
    check.add_argument("--work", required=True)
    check.add_argument("--raw", required=True, help="folder for raw output ($OUT)")
    check.add_argument("--install-info", default="/nonexistent")
    check.add_argument("--data-root", help="the Omniglot subset (adds omniglot to the grid)")
    check.add_argument("--budget", type=float, default=390.0, help="seconds for all parts")
    check.add_argument("--smoke", action="store_true", help="tiny sizes (CPU rehearsal)")
    check.add_argument("--skip-benchmark", action="store_true")
    args = parser.parse_args()
    if args.command == "install":
        info = install(args.bundle, args.target)
        (args.target / "INSTALL.json").write_text(json.dumps(info, indent=1))
        print("\n".join(info["log"]))
        print(json.dumps({k: v for k, v in info.items() if k != "log"}, indent=1))
        return 0 if info["import_ok"] else 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
