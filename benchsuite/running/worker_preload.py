"""What the forkserver of the trial workers imports once (benchsuite.running.workers):
the trial loop with the engine under it, and the engine's parsed sources, so that each
forked worker checks its trial's code identity (benchsuite.running.executors) without
parsing every engine module again. The parses are cached by source text: a module
edited after the forkserver started is parsed anew, never mistaken for the old one."""

from benchsuite.running import executors  # noqa: F401  (imported for the workers)
from benchsuite.storage import identity

identity.warm()
