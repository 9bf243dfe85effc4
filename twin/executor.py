"""Where units of work run: here (in this process or in local worker processes), or as Ray tasks on a
local or existing cluster (`executor=ray`). Both run the same function over the same items and hand
back (index, result) pairs in the order the units finish; callers put results in the order of the
items, so nothing depends on which unit finished first. Ray is imported only when `executor=ray`.

A Ray task that fails (an exception, or its worker killed) is retried `ray.max_retries` times; if it
still fails, the other tasks are cancelled and one line naming the unit is raised (TaskError).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from twin.errors import ConfigError, TaskError, TwinError
from twin.validation import at_least, between, build, one_of, spec

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")
RAY_MISSING = "executor=ray needs Ray: pip install -e '.[ray]'"


@dataclass(frozen=True)
class RayConfig:
    address: str | None = spec(None)  # None: start a Ray on this machine; "auto" or "<host>:6379": join one
    num_cpus: int = spec(0, check=at_least(0))  # CPUs of a Ray started here; 0: every core
    cpus_per_task: float = spec(1.0, check=between(0.01, 1024))  # CPUs Ray reserves for each task
    max_retries: int = spec(2, check=between(0, 100))  # attempts after the first, failed or killed


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = spec("local", check=one_of(*EXECUTORS))
    ray: RayConfig = spec(factory=RayConfig)


def executor_config(cfg: Mapping[str, Any]) -> ExecutorConfig:
    """The top-level `executor` and `ray` keys of a composed config (absent: local), validated; errors
    name `executor` or `ray.<key>`."""
    kind = cfg.get("executor", "local") or "local"
    allowed = one_of(*EXECUTORS)(kind)
    if allowed is not None:
        raise ConfigError(f"executor = {kind!r}: expected {allowed}")
    ray = cfg.get("ray") or {}
    if not isinstance(ray, Mapping):
        raise ConfigError(f"ray = {ray!r}: expected a mapping with keys address, num_cpus, ...")
    return ExecutorConfig(kind=kind, ray=build(RayConfig, dict(ray), "ray"))


def _call(fn: Callable[[T], R], index: int, item: T) -> tuple[int, R]:
    return index, fn(item)


def _call_pair(job: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    return _call(*job)


class Executor:
    """Runs `fn` over items; `processes` and `start_method` size the local pool (Ray ignores them:
    the cluster's CPUs set its parallelism). Use as a context manager."""

    kind = "local"

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        labels: Sequence[str],
        *,
        processes: int = 1,
        start_method: str = "spawn",
    ) -> Iterator[tuple[int, R]]:
        raise NotImplementedError

    def runs_here(self, processes: int) -> bool:
        """Whether map(..., processes=processes) calls `fn` in this very process."""
        return False

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """In this process (processes <= 1), else a pool of `processes` local workers (spawned or forked)."""

    def runs_here(self, processes: int) -> bool:
        return processes <= 1

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        labels: Sequence[str],
        *,
        processes: int = 1,
        start_method: str = "spawn",
    ) -> Iterator[tuple[int, R]]:
        if processes <= 1 or start_method not in multiprocessing.get_all_start_methods():
            for index, item in enumerate(items):
                yield _call(fn, index, item)
            return
        jobs = [(fn, index, item) for index, item in enumerate(items)]
        with multiprocessing.get_context(start_method).Pool(processes) as pool:
            yield from pool.imap_unordered(_call_pair, jobs, chunksize=1)


def _failure(exc: BaseException) -> str:
    """The first line of why a Ray task failed: the task's own exception, not Ray's wrapping."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, TwinError):  # already one line for people
        return str(cause)
    if cause is not None:
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__
    text = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A `host:port` that nothing answers on fails in seconds here; Ray itself would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"ray.address = {address!r}: no Ray head answers there ({exc.strerror or exc}); "
            "start one with `ray start --head` or use ray.address=auto on a cluster node"
        ) from None


class RayExecutor(Executor):
    """Each item a Ray task (retried on failure), on the cluster at `config.address` or on a Ray
    started here; Ray is started on the first map and shut down on close if this executor started it."""

    kind = "ray"

    def __init__(self, config: RayConfig):
        if importlib.util.find_spec("ray") is None:
            raise ConfigError(RAY_MISSING)
        self.config = config
        self._started = False

    def _ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            try:
                if self.config.address:
                    _check_reachable(self.config.address)
                    ray.init(address=self.config.address, **quiet)
                else:
                    cpus = self.config.num_cpus or None
                    ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"ray.address = {self.config.address!r}" if self.config.address else "a local Ray"
                raise ConfigError(f"{where}: cannot start or connect ({_failure(exc)})") from None
            self._started = True
        return ray

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        labels: Sequence[str],
        *,
        processes: int = 1,
        start_method: str = "spawn",
    ) -> Iterator[tuple[int, R]]:
        if not items:
            return
        ray = self._ray()
        task = ray.remote(_call).options(
            num_cpus=self.config.cpus_per_task,
            max_retries=self.config.max_retries,
            retry_exceptions=True,
        )
        fn_ref = ray.put(fn)
        index_of = {task.remote(fn_ref, index, item): index for index, item in enumerate(items)}
        pending = list(index_of)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        attempts = self.config.max_retries + 1
                        raise TaskError(
                            f"{labels[index_of[ref]]} failed on Ray after {attempts} attempt"
                            f"{'s' if attempts > 1 else ''}: {_failure(exc)}"
                        ) from None
        finally:
            for ref in pending:  # stopped early (a failure, Ctrl-C): the rest is not wanted
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def make_executor(config: ExecutorConfig | None = None) -> Executor:
    """The executor `config` asks for (None: local); refuses `ray` at once when Ray is not installed."""
    if config is None or config.kind == "local":
        return LocalExecutor()
    return RayExecutor(config.ray)


def executor_from(cfg: Mapping[str, Any]) -> Executor:
    """The executor of a composed top-level config (`executor`, `ray`)."""
    return make_executor(executor_config(cfg))
