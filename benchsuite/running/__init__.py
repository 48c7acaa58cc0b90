"""Floor 2, running trials: plugin discovery (`registry`), configuration and protocols,
the one planner (`planning`), the trial loop (`trial`) and its measurements, executors
(local processes, inline, Ray), and the commands built on them (`runner`, `sweep`,
`tune`, `verify`). Built on `core`, `blocks` and `storage`."""
