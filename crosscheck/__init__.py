"""Differential checks of the suite's protocols against the code of their sources."""
