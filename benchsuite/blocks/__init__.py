"""Floor 1, building blocks for plugins: models (conv-4, MLPs, per-layer transforms),
the few-shot and regression task bases, data folders. Built on `benchsuite.core` only."""
