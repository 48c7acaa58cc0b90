"""Differential checks of the suite's protocols against the original implementations they
cite: one module per protocol, each with `run(quick=False) -> crosscheck.core.Check`
(docs/crosscheck.md). `python -m crosscheck` runs them all and writes
reports/CROSSCHECK.md."""
