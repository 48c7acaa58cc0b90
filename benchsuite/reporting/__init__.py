"""Floor 3, leaderboards from records: rows and their statistics, ranking, the published
comparison, Markdown and figures. Reads records through `benchsuite.storage` and the
registry; runs nothing."""
