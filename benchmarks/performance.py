"""Render reports/PERFORMANCE.md from a pytest-benchmark JSON file (every method's meta-step,
benchmarks/test_meta_steps.py) plus the measurements made here:

- the machine's dense fp32 matmul rate (the physical ceiling the conv FLOP rates are read
  against);
- per workload, one interleaved timing run of ours (maml, fomaml) and the external
  references (benchmarks/external.py), FLOPs of one meta-step counted by torch; on the
  workloads without references, ours compiled against ours eager;
- the conv execution options against today's conv meta-step (benchmarks/conv_options.py);
- peak meta-training memory of each of them, each in a fresh process;
- memory and time vs meta-batch size (fresh processes) and vs inner steps (real trials);
- the runner's overhead on a sinusoid trial, and per trial over several short ones;
- the targets of issues 12 and 25, each met or missed, and by how much.

    python -m benchmarks.performance reports/benchmark.json --out reports

Raw numbers go to reports/performance/results.json beside the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from benchmarks import conv_options
from benchmarks.compare import interleaved, measure_fresh
from benchmarks.external import available
from benchmarks.workloads import (
    BATCH_SWEEP_CHUNK,
    BATCH_SWEEP_CONTENDERS,
    BATCH_SWEEP_SIZES,
    BATCH_SWEEP_STEPS,
    BATCH_SWEEP_WORKLOAD,
    CEILING_TARGETS,
    COMPILED,
    CONV_WORKLOADS,
    DEVICE,
    OURS,
    OVERHEAD_ITERATIONS,
    OVERHEAD_TARGET_S,
    OVERHEAD_TRIAL_ITERATIONS,
    OVERHEAD_TRIALS,
    PARITY_TARGETS,
    REFERENCE_WORKLOADS,
    REFERENCES,
    SPEED_TARGETS,
    SWEEP_ITERATIONS,
    SWEEP_METHODS,
    SWEEP_POINTS,
    SWEEP_STEPS,
    SWEEP_TASK,
    TARGET_REFERENCE,
    WORKLOADS,
    contenders,
    data_source,
    rounds,
    sweep_overrides,
)
from benchsuite.running import planning, runner
from benchsuite.running.executors import LocalExecutor
from benchsuite.running.registry import discover
from benchsuite.storage.records import cpu_model, read_record

MIB = 2**20
FLAT_FACTOR = 1.25  # "flat in meta-batch size": peak at the largest ≤ this × peak at the smallest


def matmul_gflops(size: int = 2048, repeats: int = 10, device: str = DEVICE) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def mib(value) -> str:
    return "–" if value is None else f"{value / MIB:.1f}"


def same_order_reference(name: str) -> str:
    """The learn2learn reference a contender's speed and memory are read against."""
    if name in REFERENCES:
        return TARGET_REFERENCE["fomaml" if REFERENCES[name][1] else "maml"]
    return TARGET_REFERENCE.get(name, TARGET_REFERENCE["maml"])


# -- measurements -----------------------------------------------------------------------------
def run_comparisons(registry) -> dict:
    return {w: interleaved(registry, w, contenders(w), count_flops=w in CONV_WORKLOADS)
            for w in WORKLOADS}


def run_memory() -> dict:
    return {w: {n: measure_fresh(w, n) for n in contenders(w)} for w in REFERENCE_WORKLOADS}


def run_batch_sweep() -> list[dict]:
    points = []
    for name in BATCH_SWEEP_CONTENDERS:
        if name in REFERENCES and not available(REFERENCES[name][0]):
            continue
        chunk = None if name in REFERENCES else BATCH_SWEEP_CHUNK
        for size in BATCH_SWEEP_SIZES:
            points.append(measure_fresh(BATCH_SWEEP_WORKLOAD, name, meta_batch=size,
                                        meta_chunk=chunk, steps=BATCH_SWEEP_STEPS))
    return points


def memory_sweep(registry, folder: Path) -> list[dict]:
    """A short real trial per (method, inner steps), each in a fresh process."""
    methods = [m for m in SWEEP_METHODS if m in registry.methods]
    points = []
    for method in methods:
        for steps in SWEEP_STEPS:
            items = [f"{k}={v}" for k, v in sweep_overrides(method, steps).items()]
            items += ["test_episodes=50", "val_episodes=10", "curve_points=1"]
            specs = planning.plan(registry, methods=method, tasks=SWEEP_TASK, seeds=1,
                                budget="quick", device=DEVICE,
                                options={"iterations": SWEEP_ITERATIONS, "meta_batch": None},
                                set_items=items, out=folder)
            runner.execute(specs, LocalExecutor(timeout=None), force=True, quiet=True)
            record = read_record(specs[0].path)
            points.append({"method": method, "inner_steps": steps, "status": record["status"],
                           "peak_bytes": record.get("memory", {}).get("peak_bytes"),
                           "per_iteration_s": record.get("timing", {}).get("per_iteration_s")})
    return points


PAPER_ITERATIONS = 70000  # the sinusoid protocol's meta-iterations (Finn et al. 2017)


def runner_overhead(registry, folder: Path, iterations: int = OVERHEAD_ITERATIONS) -> dict:
    """Share of a sinusoid trial's wall-clock spent outside the measured work (meta-steps,
    sampling, evaluation, fidelity): records, progress, curve bookkeeping, process start."""
    specs = planning.plan(registry, methods="maml", tasks="sinusoid", seeds=1, budget="quick",
                        device=DEVICE, options={"iterations": iterations, "meta_batch": None},
                        set_items=[], out=folder)
    start = time.perf_counter()
    runner.execute(specs, LocalExecutor(timeout=None), force=True, quiet=True)
    wall = time.perf_counter() - start
    record = read_record(specs[0].path)
    if record["status"] != "finished":
        return {"iterations": iterations, "error": f"{record['status']}: "
                f"{record.get('error') or 'no error recorded'}"}
    timing = record["timing"]
    measured = sum(timing[k] for k in ("train_s", "sampling_s", "eval_s", "fidelity_s"))
    paper_length = timing["total_s"] * PAPER_ITERATIONS / iterations
    start_up = wall - timing["total_s"]
    return {"iterations": iterations, "runner_wall_s": wall, "trial_total_s": timing["total_s"],
            "measured_work_s": measured, "process_start_s": start_up,
            "in_trial_overhead": (timing["total_s"] - measured) / timing["total_s"],
            "with_process_start": (wall - measured) / wall,
            "paper_length_s": paper_length,
            "start_share_paper_length": start_up / (start_up + paper_length)}


def per_trial_overhead(registry, folder: Path, trials: int = OVERHEAD_TRIALS,
                       iterations: int = OVERHEAD_TRIAL_ITERATIONS) -> dict:
    """What the runner adds to a trial: runner wall-clock − the trial's recorded total time,
    for `trials` short `maml` × `sinusoid` trials (one seed each), each run on its own
    through the local executor (its own runner call and worker process). One trial's
    figure is noise on a shared machine: the target reads the median."""
    specs = planning.plan(registry, methods="maml", tasks="sinusoid", seeds=trials,
                          budget="quick", device=DEVICE,
                          options={"iterations": iterations, "meta_batch": None},
                          set_items=["test_episodes=10", "val_episodes=5", "curve_points=1"],
                          out=folder)
    overheads = []
    for spec in specs:
        start = time.perf_counter()
        runner.execute([spec], LocalExecutor(timeout=None), force=True, quiet=True)
        wall = time.perf_counter() - start
        record = read_record(spec.path)
        if record["status"] != "finished":
            return {"trials": trials, "error": f"{record['status']}: "
                    f"{record.get('error') or 'no error recorded'}"}
        overheads.append(wall - record["timing"]["total_s"])
    return {"trials": trials, "iterations": iterations, "overheads_s": overheads,
            "median_s": statistics.median(overheads)}


# -- figures ----------------------------------------------------------------------------------
def _axes_pair():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    return plt, fig, axes


def _finish(plt, fig, axes, xs, xlabel: str, title: str, path: Path) -> None:
    for ax, label in zip(axes, ("peak meta-training memory (MiB)",
                                "time per meta-iteration (ms)")):
        ax.set_xscale("log")
        ax.set_xticks(list(xs), [str(x) for x in xs])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_steps_sweep(points: list[dict], path: Path) -> None:
    plt, fig, (mem_ax, time_ax) = _axes_pair()
    for method in dict.fromkeys(p["method"] for p in points):
        done = [p for p in points if p["method"] == method and p["status"] == "finished"
                and p["peak_bytes"] is not None and p["per_iteration_s"]]
        steps = [p["inner_steps"] for p in done]
        mem_ax.plot(steps, [p["peak_bytes"] / MIB for p in done], marker="o", label=method)
        time_ax.plot(steps, [p["per_iteration_s"] * 1e3 for p in done], marker="o",
                     label=method)
    _finish(plt, fig, (mem_ax, time_ax), sorted({p["inner_steps"] for p in points}),
            "inner steps",
            f"{SWEEP_TASK}: scaling with the number of inner steps (measured)", path)


def plot_batch_sweep(points: list[dict], path: Path) -> None:
    plt, fig, (mem_ax, time_ax) = _axes_pair()
    for name in dict.fromkeys(p["contender"] for p in points):
        done = [p for p in points if p["contender"] == name and "error" not in p]
        sizes = [p["meta_batch"] for p in done]
        label = name if name in REFERENCES else f"{name} (ours, meta_chunk={BATCH_SWEEP_CHUNK})"
        mem_ax.plot(sizes, [p["peak_bytes"] / MIB for p in done], marker="o", label=label)
        time_ax.plot(sizes, [p["time_s"] * 1e3 for p in done], marker="o", label=label)
    _finish(plt, fig, (mem_ax, time_ax),
            sorted({p["meta_batch"] for p in points if "error" not in p}),
            "meta-batch size (tasks)",
            f"{BATCH_SWEEP_WORKLOAD}: scaling with the meta-batch size (measured)", path)


# -- tables -----------------------------------------------------------------------------------
def workloads_table(registry, timing: dict) -> str:
    """Each workload as it was measured (model, meta-batch and inner steps of its first
    contender's built workload)."""
    rows = []
    for name, spec in WORKLOADS.items():
        task_cls = registry.task(spec["task"]).cls
        entry = next(iter(timing[name].values()))
        tasks, support, query = entry["meta_batch"]
        _, source = data_source(task_cls, dict(task_cls.defaults, **spec["overrides"]))
        rows.append([f"`{name}`", entry["model"],
                     f"{tasks} tasks × ({support} support + {query} query)",
                     entry["inner_steps"], source, rounds(spec["rounds"])])
    return tabulate(rows, ["workload", "model", "meta-batch", "inner steps", "data",
                           "interleaved rounds"], tablefmt="github")


def comparison_table(workload: str, timing: dict, memory: dict, peak_gflops: float) -> str:
    rows = []
    for name, entry in timing.items():
        reference = same_order_reference(name)
        ref_time = timing.get(reference, {}).get("median_s")
        mem = memory.get(name, {})
        ref_mem = memory.get(reference, {}).get("peak_bytes")
        speed = f"{ref_time / entry['median_s']:.2f}×" if ref_time and name != reference else \
            ("1 (reference)" if name == reference else "–")
        mem_ratio = (f"{mem['peak_bytes'] / ref_mem:.2f}×"
                     if ref_mem and mem.get("peak_bytes") is not None and name != reference
                     else ("1 (reference)" if name == reference else "–"))
        row = [f"**{name}** (ours)" if name in (*OURS, *COMPILED) else name,
               "2nd" if not entry["first_order"] else "1st", entry["path"],
               f"{entry['median_s'] * 1e3:.2f}", f"{entry['iqr_s'] * 1e3:.2f}", speed,
               mem.get("error", mib(mem.get("peak_bytes"))), mem_ratio,
               (f"{entry['grad_rel_diff']:.1e} vs {entry['grad_rel_diff_vs']}"
                if "grad_rel_diff" in entry else "–")]
        if "flops" in entry:
            rate = entry["flops"] / entry["median_s"] / 1e9
            row += [f"{entry['flops'] / 1e9:.2f}", f"{rate:.1f} ({100 * rate / peak_gflops:.0f}%)"]
        rows.append(row)
    headers = ["contender", "order", "execution path", "median ms", "IQR ms",
               "speed vs learn2learn (same order)", "peak MiB (fresh process)",
               "memory vs learn2learn", "meta-gradient rel. diff"]
    if workload in CONV_WORKLOADS:
        headers += ["GFLOP / meta-step", "GFLOP/s (% of matmul)"]
    return tabulate(rows, headers, tablefmt="github")


def against_eager_table(timing: dict) -> str:
    """Ours compiled against ours eager (the workloads without external references)."""
    rows = []
    for name, entry in timing.items():
        eager = timing.get(entry.get("grad_rel_diff_vs", ""), {}).get("median_s")
        rows.append([f"**{name}**", "2nd" if not entry["first_order"] else "1st",
                     entry["path"], f"{entry['median_s'] * 1e3:.2f}",
                     f"{entry['iqr_s'] * 1e3:.2f}", f"{entry['first_call_s']:.1f}",
                     f"{eager / entry['median_s']:.2f}×" if eager else "1 (eager)",
                     (f"{entry['grad_rel_diff']:.1e} vs {entry['grad_rel_diff_vs']}"
                      if "grad_rel_diff" in entry else "–")])
    return tabulate(rows, ["contender", "order", "execution path", "median ms", "IQR ms",
                           "first call s (compile)", "speed vs eager",
                           "meta-gradient rel. diff"], tablefmt="github")


def flat_in_batch(points: list[dict], name: str) -> tuple[bool | None, str]:
    done = sorted((p for p in points if p["contender"] == name and "error" not in p),
                  key=lambda p: p["meta_batch"])
    if len(done) < 2:
        return None, "not measured"
    small, large = done[0], done[-1]
    ratio = large["peak_bytes"] / max(small["peak_bytes"], 1)
    return (ratio <= FLAT_FACTOR,
            f"{mib(small['peak_bytes'])} MiB at meta-batch {small['meta_batch']} → "
            f"{mib(large['peak_bytes'])} MiB at {large['meta_batch']} ({ratio:.2f}×)")


def targets_table(timing: dict, memory: dict, batch_points: list[dict],
                  peak_gflops: float, trial_overhead: dict) -> str:
    rows = []
    for workload, ours, reference, target in SPEED_TARGETS:
        entry, ref = timing[workload].get(ours), timing[workload].get(reference)
        if not entry or not ref:
            rows.append([f"{workload} {ours} speed vs {reference}", f"≥ {target:g}×",
                         "not measured", "–"])
            continue
        ratio = ref["median_s"] / entry["median_s"]
        note = f"{ratio:.2f}×; ran with {entry['path']}"
        if "flops" in entry:
            rate = entry["flops"] / entry["median_s"] / 1e9
            note += f"; {rate:.1f} GFLOP/s = {100 * rate / peak_gflops:.0f}% of matmul"
        rows.append([f"{workload} {ours} speed vs {reference}", f"≥ {target:g}×", note,
                     "met" if ratio >= target else
                     f"**MISSED** by {target / ratio:.2f}× (needs {target / ratio:.2f}× faster)"])
    for workload, ours, reference, factor in PARITY_TARGETS:
        entry, ref = timing[workload].get(ours), timing[workload].get(reference)
        if not entry or not ref:
            rows.append([f"{workload} {ours} time vs {reference}", f"≤ {factor:g}×",
                         "not measured", "–"])
            continue
        ratio = entry["median_s"] / ref["median_s"]
        rows.append([f"{workload} {ours} time vs {reference}", f"≤ {factor:g}×",
                     f"{ratio:.2f}× ({entry['median_s'] * 1e3:.2f} vs "
                     f"{ref['median_s'] * 1e3:.2f} ms; compile {entry.get('first_call_s', 0):.0f} s"
                     f" vs {ref.get('first_call_s', 0):.1f} s)",
                     "met" if ratio <= factor else f"**MISSED** by {ratio / factor:.2f}×"])
    for workload, ours, share in CEILING_TARGETS:
        entry = timing[workload].get(ours, {})
        if "flops" not in entry:
            rows.append([f"{workload} {ours} share of the matmul ceiling", f"≥ {share:.0%}",
                         "not measured", "–"])
            continue
        rate = entry["flops"] / entry["median_s"] / 1e9
        measured = rate / peak_gflops
        rows.append([f"{workload} {ours} share of the matmul ceiling", f"≥ {share:.0%}",
                     f"{rate:.1f} of {peak_gflops:.1f} GFLOP/s = {measured:.0%}; ran with "
                     f"{entry['path']}",
                     "met" if measured >= share else
                     f"**MISSED** by {share / measured:.2f}× (needs {share / measured:.2f}× "
                     "the FLOP rate)"])
    for workload in CONV_WORKLOADS:
        for ours in OURS:
            reference = TARGET_REFERENCE[ours]
            mine, theirs = (memory[workload].get(n, {}).get("peak_bytes")
                            for n in (ours, reference))
            if mine is None or theirs is None:
                rows.append([f"{workload} {ours} peak memory vs {reference}", "≤ 1×",
                             "not measured", "–"])
                continue
            rows.append([f"{workload} {ours} peak memory vs {reference}", "≤ 1×",
                         f"{mib(mine)} vs {mib(theirs)} MiB ({mine / theirs:.2f}×)",
                         "met" if mine <= theirs else "**MISSED**"])
    for ours in OURS:
        flat, note = flat_in_batch(batch_points, ours)
        rows.append([f"{BATCH_SWEEP_WORKLOAD} {ours} (meta_chunk={BATCH_SWEEP_CHUNK}) peak "
                     f"memory flat in meta-batch size", f"largest ≤ {FLAT_FACTOR:g}× smallest",
                     note, "–" if flat is None else ("met" if flat else "**MISSED**")])
    bound = f"< {OVERHEAD_TARGET_S:g} s"
    if "error" in trial_overhead:
        rows.append(["per-trial overhead", bound, f"not measured ({trial_overhead['error']})",
                     "–"])
    else:
        median = trial_overhead["median_s"]
        rows.append(["per-trial overhead (runner wall-clock − trial total time)", bound,
                     f"{median:.3f} s, median of {trial_overhead['trials']} trials "
                     f"(each {', '.join(f'{o:.3f}' for o in trial_overhead['overheads_s'])})",
                     "met" if median < OVERHEAD_TARGET_S else
                     f"**MISSED** by {median / OVERHEAD_TARGET_S:.2f}× "
                     f"({median - OVERHEAD_TARGET_S:.3f} s too much)"])
    return tabulate(rows, ["target", "bound", "measured", "result"], tablefmt="github")


def batch_sweep_table(points: list[dict]) -> str:
    rows = [[p["contender"], p.get("path", "–"), p["meta_batch"],
             p.get("error", mib(p.get("peak_bytes"))),
             f"{p['time_s'] * 1e3:.1f}" if "time_s" in p else "–"] for p in points]
    return tabulate(rows, ["contender", "execution path", "meta-batch", "peak MiB",
                           "ms / meta-step"], tablefmt="github")


def all_medians_table(bench: dict) -> str:
    rows = sorted([b["extra_info"]["workload"], b["extra_info"]["method"],
                   b["extra_info"].get("path", "–"),
                   f"{b['stats']['median'] * 1e3:.3f}", f"{b['stats']['iqr'] * 1e3:.3f}",
                   b["stats"]["rounds"]] for b in bench["benchmarks"])
    return tabulate(rows, ["workload", "method", "execution path", "median ms", "IQR ms",
                           "rounds"], tablefmt="github")


def overhead_text(overhead: dict) -> str:
    if "error" in overhead:
        return (f"The `maml` × `sinusoid` trial of {overhead['iterations']} iterations did not "
                f"finish ({overhead['error']}): no overhead measured.")
    return (
        f"A `maml` × `sinusoid` trial of {overhead['iterations']} iterations through the local "
        f"executor: runner wall-clock {overhead['runner_wall_s']:.2f} s, trial "
        f"{overhead['trial_total_s']:.2f} s, measured work (meta-steps, sampling, "
        f"evaluation) {overhead['measured_work_s']:.2f} s. Overhead inside the trial "
        f"(records, curve and bookkeeping, task construction): "
        f"{100 * overhead['in_trial_overhead']:.2f}% (target ≤ 3%). The fresh worker "
        f"process of the local executor adds a fixed start-up of "
        f"{overhead['process_start_s']:.2f} s: {100 * overhead['with_process_start']:.2f}% "
        f"of this short trial's wall-clock, "
        f"{100 * overhead['start_share_paper_length']:.2f}% of a {PAPER_ITERATIONS}-iteration "
        f"one (about {overhead['paper_length_s']:.0f} s); `--executor inline` has none.")


def per_trial_text(trial_overhead: dict) -> str:
    if "error" in trial_overhead:
        return (f"Per-trial overhead: a short trial did not finish ({trial_overhead['error']})"
                "; not measured.")
    return (
        f"Per-trial overhead: {trial_overhead['trials']} `maml` × `sinusoid` trials of "
        f"{trial_overhead['iterations']} iterations, each started alone through the local "
        "executor (a forked worker); runner wall-clock minus the trial's recorded total "
        f"time: median {trial_overhead['median_s']:.3f} s (target < {OVERHEAD_TARGET_S:g} s), "
        f"each {', '.join(f'{o:.3f}' for o in trial_overhead['overheads_s'])} s: what the "
        "runner spends outside the trial's own clock (forking the worker from the "
        "forkserver the sweeps above started, filing the record, its bookkeeping).")


# -- the report -------------------------------------------------------------------------------
def write(bench_json: Path, out: Path) -> Path:
    registry = discover()
    bench = json.loads(bench_json.read_text())
    peak = matmul_gflops()
    timing = run_comparisons(registry)
    conv = conv_options.run(registry)
    memory = run_memory()
    batch_points = run_batch_sweep()
    with tempfile.TemporaryDirectory() as scratch:
        steps_points = memory_sweep(registry, Path(scratch) / "sweep")
        overhead = runner_overhead(registry, Path(scratch) / "overhead")
        trial_overhead = per_trial_overhead(registry, Path(scratch) / "per-trial")
    figures = out / "performance"
    plot_steps_sweep(steps_points, figures / "memory-scaling.png")
    plot_batch_sweep(batch_points, figures / "meta-batch-scaling.png")
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "results.json").write_text(json.dumps(
        {"matmul_gflops": peak, "comparisons": timing, "conv_options": conv,
         "memory": memory,
         "meta_batch_sweep": batch_points, "inner_steps_sweep": steps_points,
         "runner_overhead": overhead, "per_trial_overhead": trial_overhead},
        indent=1, default=str))
    missing = [lib for lib in dict.fromkeys(lib for lib, _ in REFERENCES.values())
               if not available(lib)]
    memory_method = next((m.get("memory_method") for w in memory.values() for m in w.values()
                          if m.get("memory_method")), "–")
    steps_rows = [[p["method"], p["inner_steps"], p["status"], mib(p["peak_bytes"]),
                   f"{p['per_iteration_s'] * 1e3:.2f}" if p["per_iteration_s"] else "–"]
                  for p in steps_points]
    lines = [
        "# Performance", "",
        f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} by "
        "`nox -s bench` (how it works: docs/performance.md).", "",
        f"Machine: {cpu_model()}, {torch.get_num_threads()} torch threads, device {DEVICE}"
        f"{' (' + torch.cuda.get_device_name() + ')' if DEVICE.startswith('cuda') else ''}; "
        f"Python {platform.python_version()}, torch {torch.__version__}. "
        f"Dense fp32 matmul (2048²): {peak:.1f} GFLOP/s.", "",
        "## Workloads", "",
        workloads_table(registry, timing), "",
        "Every contender of a workload starts from the same φ₀ and computes the meta-gradient "
        "of the same meta-batch tensors; the relative difference of its meta-gradient from "
        "ours of the same order is in the tables.", "",
        "## Targets", "",
        "Speed: the reference's median meta-step time / ours, from the workload's "
        "interleaved run (the reference: learn2learn of the same order, or our eager step "
        "for the compiled path on logistic and hyper-cleaning). Share of the matmul "
        "ceiling: FLOPs of one meta-step / its median time, against the machine's dense "
        "fp32 matmul rate. Memory: peak meta-training memory, each contender in a fresh "
        "process. A missed target says by how much.", "",
        targets_table(timing, memory, batch_points, peak, trial_overhead), "",
        "## Ours against the external references", "",
        "One meta-gradient of the workload's meta-batch (no optimiser step). Times: one "
        "process per workload, every contender's meta-step alternated round by round "
        "(order rotating), after a warm-up call each; median and IQR over the rounds. "
        "References are written as their users write them on ordinary `nn.Module`s "
        "(benchmarks/external.py): learn2learn `MAML.clone()`/`adapt()` per task, TorchOpt "
        "`MetaSGD`, higher `innerloop_ctx`. Peak memory: "
        f"{memory_method}; the meter starts once the workload and the module are built. "
        "FLOPs: torch.utils.flop_counter over one meta-step.", "",
    ]
    if missing:
        lines += [f"Not installed here, so not measured: {', '.join(missing)}.", ""]
    for workload in REFERENCE_WORKLOADS:
        lines += [f"### {workload}", "",
                  comparison_table(workload, timing[workload], memory[workload], peak), ""]
    lines += [
        "## The compiled path against the eager engine", "",
        "Ours compiled (`compile=on`) against ours eager (`compile=off`, today's engine) on "
        "launch-bound tasks of the reference grids, each on the task's defaults, timed "
        "interleaved as above; the first call (the compile) is kept apart. No external "
        "references here: learn2learn, TorchOpt, higher and JAX are written for the "
        "sinusoid MLP and conv-4 workloads only, and the target is our compiled step against "
        "our eager one. The meta-gradient rel. diff is the compiled step's against the eager "
        "one (float32; exact means ≤ 1e-6).", "",
    ]
    for workload in WORKLOADS:
        if workload not in REFERENCE_WORKLOADS:
            lines += [f"### {workload}", "", against_eager_table(timing[workload]), ""]
    lines += [
        "## Conv execution options", "",
        "Today's conv meta-step (one task at a time, plain autograd, native batch norm) "
        "against four ways of running it, each timed interleaved with it in one process "
        "(same workloads and rounds as above, after a warm-up call each), the engine left "
        "unchanged: `channels-last` (φ's kernels and the images in `torch.channels_last` "
        "memory format), `grouped-query` (each task adapted alone, then one query pass "
        "for all tasks: their adapted kernels as the groups of one convolution; every "
        "task's graph alive until one backward), `without-onednn` (today's step with oneDNN "
        "switched off: what oneDNN, today's convolution backend, is worth) and `fused-bn-relu` "
        "(batch norm and ReLU as one inductor-fused kernel; a compiled kernel has no double "
        "backward, so MAML cannot run it). Rel. diff: ‖g − g_today‖ / ‖g_today‖ of "
        "the meta-gradient, in float32 and, on the same φ₀ and batch, in float64. Float32 "
        "error: today's and the option's float32 meta-gradient against today's float64 one "
        "(the rounding each carries). An option is a candidate when it is at least "
        f"{conv_options.FASTER:g}× faster and within {conv_options.EXACT:g} of today's in "
        "float32 (benchmarks/conv_options.py).", "",
        conv_options.table(conv), "",
        "## Memory and time vs meta-batch size", "",
        f"Workload {BATCH_SWEEP_WORKLOAD}, meta-batch of 1 … {max(BATCH_SWEEP_SIZES)} tasks; "
        f"ours with meta_chunk={BATCH_SWEEP_CHUNK} (one task's meta-gradient at a time, "
        "accumulated). Each point a fresh process running "
        f"{BATCH_SWEEP_STEPS} meta-steps (time: the last).", "",
        "![meta-batch scaling](performance/meta-batch-scaling.png)", "",
        batch_sweep_table(batch_points), "",
        "## Memory and time vs inner steps", "",
        f"Task {SWEEP_TASK} with {SWEEP_POINTS} support and {SWEEP_POINTS} query points per "
        f"task, {SWEEP_ITERATIONS} meta-iterations per point, each a trial in a fresh "
        "process; peak meta-training memory as the trial records it.", "",
        "![inner-steps scaling](performance/memory-scaling.png)", "",
        tabulate(steps_rows, ["method", "inner steps", "status", "peak MiB",
                              "ms / meta-iter"], tablefmt="github"), "",
        "## Every method's meta-step", "",
        "pytest-benchmark, one method after the other (not interleaved: for the ratios use "
        "the comparisons above).", "",
        all_medians_table(bench), "",
    ]
    lines += ["## Runner overhead", "", overhead_text(overhead), "",
              per_trial_text(trial_overhead), ""]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "PERFORMANCE.md"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()
    print(f"wrote {write(args.bench_json, args.out)}")


if __name__ == "__main__":
    main()
