"""Floor 1, records on disk: the record format and its writer (`records`), loading them as
a table (`results`), a trial's code identity (`identity`) and its environment
(`reproducibility`). Built on `benchsuite.core` only."""
