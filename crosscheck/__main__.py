"""`python -m crosscheck [--quick] [--out reports/CROSSCHECK.md]`: run every check module of
this folder (a module defining `run`), write the report, exit 1 if any check fails or
cannot run, 2 on bad arguments."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys
from pathlib import Path

import crosscheck
from crosscheck.core import Check, Unavailable, render


def check_modules() -> list[str]:
    """The modules of this package that define `run`, by name."""
    names = []
    for info in sorted(pkgutil.iter_modules(crosscheck.__path__), key=lambda i: i.name):
        if info.name in ("core", "__main__"):
            continue
        module = importlib.import_module(f"crosscheck.{info.name}")
        if callable(getattr(module, "run", None)):
            names.append(info.name)
    return names


def out_problem(out: Path) -> str | None:
    """Why the report cannot be written at `out`, checked before any check runs."""
    if out.is_dir():
        return "is a folder; give a file"
    folder = next((p for p in out.parents if p.exists()), Path("."))
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK):
        return f"{folder} is not writable"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crosscheck", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small networks and meta-batches (seconds; what the tests run)")
    parser.add_argument("--out", type=Path, default=Path("reports/CROSSCHECK.md"))
    args = parser.parse_args(argv)
    problem = out_problem(args.out)
    if problem:
        print(f"crosscheck: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    import torch

    checks, failed = [], []
    for name in check_modules():
        try:
            check = importlib.import_module(f"crosscheck.{name}").run(quick=args.quick)
        except Unavailable as missing:
            check = Check(protocol=name, source=f"not run: {missing}")
        print(f"{check.protocol}: {'PASS' if check.passed else 'FAIL'}")
        for difference in check.differences:
            print(f"  {difference.quantity}: {difference.rel_diff:.2e} "
                  f"(tolerance {difference.tolerance:.0e})")
        checks.append(check)
        if not check.passed:
            failed.append(check.protocol)
    environment = (f"Python {platform.python_version()}, torch {torch.__version__}, "
                   f"{platform.machine()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(checks, quick=args.quick, environment=environment))
    print(f"report: {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
