"""Nox sessions. They run inside the project's one environment (.venv, made by
tools/setup.sh) instead of building a ~5.5 GB torch environment per session:
`.venv/bin/nox -s tests`.
"""

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
    session.run(PYTHON, "-m", "ruff", "check", "benchsuite", "methods", "tasks", "tests",
                "benchmarks", "noxfile.py")


@nox.session
def bench(session):
    """pytest-benchmark meta-steps, the memory-scaling sweep and the runner overhead,
    rendered to reports/PERFORMANCE.md."""
    Path("reports").mkdir(exist_ok=True)
    session.run(PYTHON, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider",
                "--benchmark-enable", "--benchmark-json", "reports/benchmark.json",
                *session.posargs)
    session.run(PYTHON, "-m", "benchmarks.performance", "reports/benchmark.json",
                "--out", "reports")


@nox.session
def demo(session):
    """The default suite and its leaderboard: reports/LEADERBOARD.md."""
    session.run(PYTHON, "-m", "benchsuite", "run", "--methods", "all", "--tasks",
                "sinusoid,quadratic", "--seeds", "2", "--out", "results/demo", *session.posargs)
    session.run(PYTHON, "-m", "benchsuite", "report", "results/demo", "--out", "reports")


REFERENCE_RECORDS = "results/reference"
REFERENCE_GRIDS = (
    # Finn et al. 2017's sinusoid protocol at its 70,000 iterations, tested with K = 5
    # points as the numbers in results/reference/published.toml are
    ["--methods", "maml,fomaml,reptile,metasgd,anil,pretrain", "--tasks", "sinusoid",
     "--budget", "paper", "--set", "sinusoid.test_shots=5"],
    # the real Omniglot subset beside the checkout, sized to about an hour of 2 CPU cores
    ["--methods", "anil,fomaml,imaml,l2l-maml,maml,metasgd,pretrain,reptile,trhg",
     "--tasks", "omniglot", "--iterations", "300", "--meta-batch", "8",
     "--set", "omniglot.query=5", "--set", "curve_points=10", "--set", "val_episodes=50",
     "--data-root", "../shared/data/omniglot-small"],
    ["--methods", "bda,darts,implicit-cg,implicit-fp,implicit-neumann,maml,trhg",
     "--tasks", "hypercleaning"],
    ["--methods", "anil,fomaml,imaml,l2l-maml,maml,metasgd,pretrain,reptile,trhg",
     "--tasks", "logistic"],
)


@nox.session
def reference(session):
    """The reference grids (3 seeds, one torch thread per trial; about 2 h of CPU when
    nothing is stored yet: existing records are kept, `-- --force` re-runs them) and the
    committed leaderboard reports/reference/LEADERBOARD.md rendered from them."""
    for grid in REFERENCE_GRIDS:
        session.run(PYTHON, "-m", "benchsuite", "run", *grid, "--seeds", "3",
                    "--out", REFERENCE_RECORDS, "-q", *session.posargs,
                    env={"OMP_NUM_THREADS": "1"})
    session.run(PYTHON, "-m", "benchsuite", "report", REFERENCE_RECORDS,
                "--out", "reports/reference")
    session.run(PYTHON, "-m", "benchsuite", "verify", REFERENCE_RECORDS,
                "--data-root", "../shared/data/omniglot-small")
