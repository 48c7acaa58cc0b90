"""Floor 0, the contract and the functional core: what a method or a task plugin is
(`contract`), its typed settings (`settings`), the structures passed between them, the
functional helpers of the hypergradient code (`functional`, `execution`), seeds and the
statistics of a score. Imports nothing else of benchsuite."""
