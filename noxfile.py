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


BENCH_EXTRA = ("torchopt", "higher", "jax")  # pyproject's `bench` extra: external references


@nox.session
def bench(session):
    """Every method's meta-step (pytest-benchmark), then benchmarks.performance: ours against
    learn2learn / TorchOpt / higher / JAX interleaved on sinusoid, omniglot and
    miniimagenet, ours compiled against eager on logistic and hypercleaning, the conv
    execution options, peak memory in fresh processes, the meta-batch and inner-steps
    sweeps, the runner overhead and the targets, rendered to reports/PERFORMANCE.md
    (about 30 min on 2 CPU cores). The `bench` extra is installed when missing; a
    reference whose library does not install is reported as not measured. BENCH_ROUNDS=1
    BENCH_SMOKE=1 make a quick smoke run, BENCH_OUT=DIR writes elsewhere than reports/
    (docs/performance.md)."""
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


@nox.session
def demo(session):
    """The demo grid (benchsuite/grids/demo.toml: every method on sinusoid and quadratic,
    2 seeds, about a minute on 2 CPU cores) and its leaderboard, which the grid file has
    `run` write: reports/LEADERBOARD.md and reports/index.html. Arguments after `--` go to
    `benchsuite run` (e.g. `-- --jobs 4`: they win over the file's)."""
    session.run(PYTHON, "-m", "benchsuite", "run", "--config", "demo", *session.posargs)


REFERENCE_RECORDS = "results/reference"  # the `out` of the reference grid files
PROTOCOL_RECORDS = "results/protocols"  # the `out` of the protocol grid files
REFERENCE_JOBS = 2  # trials side by side, one torch thread each (OMP_NUM_THREADS=1)
OMNIGLOT_SUBSET = "../shared/data/omniglot-small"
# grid files of benchsuite/grids/ (benchsuite run --config NAME): methods, tasks, seeds,
# settings and the records folder are written there
REFERENCE_GRIDS = ("reference-sinusoid", "reference-omniglot", "reference-hypercleaning",
                   "reference-logistic")
PROTOCOL_RUNS = ("protocol-betty-imaml", "protocol-reptile-torch")
# the method every reference row's probability of improvement compares with: MAML, which
# runs on all four reference tasks and which most other methods extend
REPORT_BASELINE = {REFERENCE_RECORDS: ("--baseline", "maml")}
TUNING = (
    # every reference-grid pair without a paper protocol, tuned on validation episodes
    # after half its grid's iterations (benchsuite/protocols/tuned/)
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
    episodes; writes benchsuite/protocols/tuned/), before `nox -s reference` uses them."""
    for grid in TUNING:
        session.run(PYTHON, "-m", "benchsuite", "tune", *grid, "--jobs", str(REFERENCE_JOBS),
                    "--protocols-dir", "benchsuite/protocols",
                    "--out", "results/tune", "-q", *session.posargs,
                    env={"OMP_NUM_THREADS": "1"})


@nox.session
def reference(session):
    """The reference grids (benchsuite/grids/reference-*.toml, protocol-*.toml: 5 seeds, 2
    trials at a time with one torch thread each; about 4 h on 2 CPU cores when nothing is
    stored yet: existing
    records are kept, `-- --force` re-runs them), the named protocols' runs, and their
    leaderboards reports/reference/LEADERBOARD.md and reports/protocols/LEADERBOARD.md."""
    for grid in (*REFERENCE_GRIDS, *PROTOCOL_RUNS):
        session.run(PYTHON, "-m", "benchsuite", "run", "--config", grid, *session.posargs,
                    env={"OMP_NUM_THREADS": "1"})
    for records, report in ((REFERENCE_RECORDS, "reports/reference"),
                            (PROTOCOL_RECORDS, "reports/protocols")):
        session.run(PYTHON, "-m", "benchsuite", "report", records, "--out", report,
                    *REPORT_BASELINE.get(records, ()))
        # --quick: each record re-run up to its first curve point (whole trials: hours)
        session.run(PYTHON, "-m", "benchsuite", "verify", records, "--quick",
                    "--data-root", OMNIGLOT_SUBSET)
