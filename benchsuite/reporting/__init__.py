"""Floor 3, leaderboards from records, one module per job: cells (one score of a row, seed
by seed), rows, ranking (ranks, floors, the baseline), published (papers' numbers), tables
(a task's section), figures, markdown and html (rendering), report (putting it together)
and export (records as CSV / Parquet). Reads records through `benchsuite.storage` and the
registry; runs nothing."""
