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
                "sinusoid,quadratic", "--seeds", "2", *session.posargs)
    session.run(PYTHON, "-m", "benchsuite", "report", "results", "--out", "reports")
