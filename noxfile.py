"""Nox sessions. They run inside the project's one environment (.venv, made by
tools/setup.sh) instead of building a ~5.5 GB torch environment per session:
`.venv/bin/nox -s tests`.
"""

import importlib.util
import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]
PYTHON = sys.executable  # the interpreter nox runs in: .venv's


@nox.session
def tests(session):
    """The test suite (CPU; slow tests excluded unless `-- -m slow` is passed)."""
    session.run(PYTHON, "-m", "pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session):
    """ruff on the whole tree, then mypy on benchsuite/ (settings: pyproject's [tool.mypy])."""
    session.run(PYTHON, "-m", "ruff", "check", "benchsuite", "methods", "tasks", "tests",
                "benchmarks", "crosscheck", "noxfile.py")
    session.run(PYTHON, "-m", "mypy")


@nox.session
def docs(session):
    """The documentation site from docs/ into site/ (mkdocs, strict: a broken link, a
    missing page or a page left out of the nav fails the build)."""
    session.run(PYTHON, "-m", "mkdocs", "build", "--strict", "--site-dir", "site")


BENCH_EXTRA = ("torchopt", "higher")  # pyproject's `bench` extra: external references


@nox.session
def bench(session):
    """Every method's meta-step (pytest-benchmark), then benchmarks.performance: ours against
    learn2learn / TorchOpt / higher interleaved on sinusoid, omniglot and miniimagenet,
    peak memory in fresh processes, the meta-batch and inner-steps sweeps, the runner
    overhead and the targets, rendered to reports/PERFORMANCE.md (about 20 min on 2 CPU
    cores). The `bench` extra is installed when missing; a reference whose library does
    not install is reported as not measured. BENCH_ROUNDS=1 BENCH_SMOKE=1 make a quick
    smoke run, BENCH_OUT=DIR writes elsewhere than reports/ (docs/performance.md)."""
    if any(importlib.util.find_spec(name) is None for name in BENCH_EXTRA):
        session.run(PYTHON, "-m", "pip", "install", "-q", "-e", ".[bench]",
                    success_codes=[0, 1])
    out = Path(os.environ.get("BENCH_OUT", "reports"))
    out.mkdir(parents=True, exist_ok=True)
    session.run(PYTHON, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider",
                "--benchmark-enable", "--benchmark-json", str(out / "benchmark.json"),
                *session.posargs)
    session.run(PYTHON, "-m", "benchmarks.performance", str(out / "benchmark.json"),
                "--out", str(out))


# The original implementations the differential checks run. Betty comes from the package
# registry; betty-ml 0.2.1 declares Python < 3.11 (it imports on 3.11) and pins old
# versions of what it uses, so it installs without its dependencies (torch and numpy are
# the environment's). Not a pyproject extra: pip cannot express --no-deps per package.
CROSSCHECK_PACKAGES = {"betty": "betty-ml==0.2.1"}


@nox.session
def crosscheck(session):
    """The differential checks of crosscheck/ (docs/crosscheck.md): every named and paper
    protocol whose original code is PyTorch against that code, on the same weights and
    batches in float64, written to reports/CROSSCHECK.md; fails when a check does. The
    original packages are installed into this environment when missing. `-- --quick`
    runs the small versions the tests run."""
    for module, requirement in CROSSCHECK_PACKAGES.items():
        if importlib.util.find_spec(module) is None:
            session.run(PYTHON, "-m", "pip", "install", "-q", "--no-deps",
                        "--ignore-requires-python", requirement)
    session.run(PYTHON, "-m", "crosscheck", *session.posargs, env={"OMP_NUM_THREADS": "1"})


DEMO_JOBS = 2  # trials side by side: the demo is sized for 2 CPU cores
# A few minutes' budget: every method of both tasks, shortened from the quick budget
# (sinusoid 2,000, quadratic 200 iterations); the slowest meta-steps (iMAML's CG solve,
# learn2learn's per-task autograd, BDA's aggregated inner loop) get fewer. Later --set
# items win, so the per-method ones follow the per-task ones.
DEMO_BUDGET = ("--set", "sinusoid.iterations=400", "--set", "quadratic.iterations=80",
               "--set", "imaml.iterations=100", "--set", "l2l-maml.iterations=150",
               "--set", "bda.iterations=40")


@nox.session
def demo(session):
    """Every method on sinusoid and quadratic, 2 seeds, on a demo budget (a few minutes on
    2 CPU cores, DEMO_JOBS trials at a time), and its leaderboard: reports/LEADERBOARD.md.
    Arguments after `--` go to `benchsuite run` (e.g. `-- --jobs 4`: the last one wins)."""
    session.run(PYTHON, "-m", "benchsuite", "run", "--methods", "all", "--tasks",
                "sinusoid,quadratic", "--seeds", "2", *DEMO_BUDGET, "--jobs", str(DEMO_JOBS),
                "--out", "results/demo", *session.posargs)
    session.run(PYTHON, "-m", "benchsuite", "report", "results/demo", "--out", "reports")


REFERENCE_RECORDS = "results/reference"
PROTOCOL_RECORDS = "results/protocols"
REFERENCE_SEEDS = 5
REFERENCE_JOBS = 2  # trials side by side, one torch thread each (OMP_NUM_THREADS=1)
OMNIGLOT_SUBSET = "../shared/data/omniglot-small"
REFERENCE_GRIDS = (
    # Finn et al. 2017's sinusoid protocol at its 70,000 iterations, tested with K = 5
    # points as the numbers in results/reference/published.toml are
    ["--methods", "maml,fomaml,reptile,metasgd,anil,pretrain,scratch", "--tasks", "sinusoid",
     "--budget", "paper", "--set", "sinusoid.test_shots=5"],
    # the real Omniglot subset beside the checkout, sized to about an hour of 2 CPU cores:
    # every method under its protocol (protocols/), with the grid's iterations and
    # meta-batch, so that every method meets the same training tasks; Reptile keeps its
    # paper's meta-batch of 5 (the records' configs hold the values used)
    ["--methods", "anil,fomaml,imaml,l2l-maml,maml,metasgd,reptile,scratch,transfer",
     "--tasks", "omniglot", "--iterations", "300", "--meta-batch", "8",
     "--set", "omniglot.query=5", "--set", "curve_points=10", "--set", "val_episodes=50",
     "--set", "scratch.iterations=0",  # the floor trains nothing, whatever --iterations says
     "--set", "reptile.meta_batch=5", "--data-root", OMNIGLOT_SUBSET],
    ["--methods", "bda,darts,implicit-cg,implicit-fp,implicit-neumann,maml,trhg,scratch",
     "--tasks", "hypercleaning"],
    ["--methods", "anil,fomaml,l2l-maml,maml,metasgd,mtnet,pretrain,reptile,trhg,warpgrad,scratch",
     "--tasks", "logistic"],
)
PROTOCOL_RUNS = (
    # the named protocols of protocols/named/, as their sources ran them
    ["--protocol", "betty-imaml", "--iterations", "100", "--set", "curve_points=5",
     "--set", "val_episodes=50", "--data-root", OMNIGLOT_SUBSET, "--seeds", "1"],
    ["--protocol", "reptile-torch", "--seeds", "3"],
)
TUNING = (
    # every reference-grid pair without a paper protocol, tuned on validation episodes
    # after half its grid's iterations (protocols/tuned/)
    ["--methods", "fomaml,anil", "--tasks", "omniglot", "--iterations", "150",
     "--meta-batch", "8", "--set", "omniglot.query=5", "--set", "curve_points=5",
     "--set", "val_episodes=50", "--data-root", OMNIGLOT_SUBSET],
    ["--methods", "bda,darts,implicit-cg,implicit-fp,implicit-neumann,maml,trhg",
     "--tasks", "hypercleaning", "--iterations", "100"],
    ["--methods", "anil,fomaml,l2l-maml,maml,metasgd,mtnet,pretrain,trhg,warpgrad",
     "--tasks", "logistic", "--iterations", "1000"],
    ["--methods", "fomaml,anil,reptile", "--tasks", "sinusoid", "--budget", "paper",
     "--set", "sinusoid.test_shots=5", "--iterations", "35000"],
)


@nox.session
def tune(session):
    """`benchsuite tune` for the TUNING pairs (4 configurations each on validation
    episodes; writes protocols/tuned/), before `nox -s reference` uses them."""
    for grid in TUNING:
        session.run(PYTHON, "-m", "benchsuite", "tune", *grid, "--jobs", str(REFERENCE_JOBS),
                    "--out", "results/tune", "-q", *session.posargs,
                    env={"OMP_NUM_THREADS": "1"})


@nox.session
def reference(session):
    """The reference grids (REFERENCE_SEEDS seeds, REFERENCE_JOBS trials at a time with one
    torch thread each; about 4 h on 2 CPU cores when nothing is stored yet: existing
    records are kept, `-- --force` re-runs them), the named protocols' runs, and their
    leaderboards reports/reference/LEADERBOARD.md and reports/protocols/LEADERBOARD.md."""
    for grid in REFERENCE_GRIDS:
        session.run(PYTHON, "-m", "benchsuite", "run", *grid, "--seeds", str(REFERENCE_SEEDS),
                    "--jobs", str(REFERENCE_JOBS), "--out", REFERENCE_RECORDS, "-q",
                    *session.posargs, env={"OMP_NUM_THREADS": "1"})
    for grid in PROTOCOL_RUNS:
        session.run(PYTHON, "-m", "benchsuite", "run", *grid, "--jobs", str(REFERENCE_JOBS),
                    "--out", PROTOCOL_RECORDS, "-q", *session.posargs,
                    env={"OMP_NUM_THREADS": "1"})
    for records, report in ((REFERENCE_RECORDS, "reports/reference"),
                            (PROTOCOL_RECORDS, "reports/protocols")):
        session.run(PYTHON, "-m", "benchsuite", "report", records, "--out", report)
        # --quick: each record re-run up to its first curve point (whole trials: hours)
        session.run(PYTHON, "-m", "benchsuite", "verify", records, "--quick",
                    "--data-root", OMNIGLOT_SUBSET)
