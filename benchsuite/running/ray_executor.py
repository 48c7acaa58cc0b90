"""The Ray executor (benchsuite.running.executors): every trial a Ray task that runs it on
its node exactly as the local executor does (`run_isolated`); records travel back to the
driver, which writes them. Imported only when `--executor ray` is chosen."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from benchsuite.core.errors import UsageError
from benchsuite.running.executors import Executor, _first_line, run_isolated
from benchsuite.storage.records import FAILED, OOM, new_record

if TYPE_CHECKING:
    from benchsuite.running.planning import TrialSpec

RAY_RETRIES = 2
FORWARDED_PREFIX = "BENCHSUITE_"  # environment variables every Ray task gets from the driver
CONNECT_TIMEOUT_S = 10.0


class RayExecutor(Executor):
    """Trials as Ray tasks. Connects to the cluster at `address` ("auto": the one this
    machine belongs to), or starts a local instance when `address` is None and none runs
    in this process yet; a local instance it started is shut down at the end."""

    def __init__(self, timeout: float | None, address: str | None,
                 max_retries: int = RAY_RETRIES):
        self.timeout = timeout
        self.address = address
        self.max_retries = max_retries
        self.started_ray = False

    def __enter__(self):
        import ray

        if not ray.is_initialized():
            options = {"address": self.address} if self.address else {
                "include_dashboard": False}
            ray.init(**options, log_to_driver=False, configure_logging=False)
            self.started_ray = True
        return self

    def __exit__(self, *exc_info) -> None:
        import ray

        if self.started_ray:
            ray.shutdown()

    def outcomes(self, specs: list[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
        import ray

        remote_trial = ray.remote(run_isolated)
        # Settings passed as environment variables (e.g. where the data lives) reach a
        # local worker by inheritance; a cluster's workers get them from here.
        forwarded = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIX)}
        environment = {"runtime_env": {"env_vars": forwarded}} if forwarded else {}
        running = {}
        for spec in specs:
            ref = remote_trial.options(**ray_resources(spec), **environment,
                                       max_retries=self.max_retries,
                                       retry_exceptions=False).remote(spec, self.timeout)
            running[ref] = spec
        try:
            while running:
                # short waits let this process notice Ctrl-C / SIGTERM
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    spec = running.pop(ref)
                    yield spec, self._collect(ref, spec)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def _collect(self, ref, spec: TrialSpec) -> dict:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.OutOfMemoryError as error:
            return new_record(spec, OOM, f"Ray's memory monitor killed the worker: "
                                           f"{_first_line(error)}")
        except ray.exceptions.RayTaskError as error:
            return new_record(spec, FAILED, f"the trial's Ray task raised "
                                              f"{_first_line(error)}")
        except ray.exceptions.RayError as error:
            return new_record(spec, FAILED, f"lost by Ray after {self.max_retries} retries: "
                                              f"{type(error).__name__}: {_first_line(error)}")


def ray_resources(spec: TrialSpec) -> dict[str, int]:
    """One GPU for a CUDA trial (Ray points CUDA_VISIBLE_DEVICES at it, so the trial's
    `cuda` is that GPU), and one CPU for every trial."""
    return {"num_cpus": 1, "num_gpus": 1 if spec.config["device"].startswith("cuda") else 0}


def check_reachable(address: str) -> None:
    """Fail fast on a wrong --address: Ray itself keeps retrying it for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r}: write HOST:PORT (the head node's GCS "
                         "port, 6379 by default) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise UsageError(f"--address {address!r}: no Ray head answers there ({error}); "
                         "start one with `ray start --head` or fix the address") from None
