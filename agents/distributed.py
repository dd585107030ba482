"""Episodes on a Ray cluster: one episode engine per actor, records gathered in order.

``spgg run ... --ray [ADDRESS] --workers N`` plays the same episodes as the single-process run,
spread over ``N`` Ray actors (:class:`EpisodeWorker`), each holding its own ensemble, backends
and :class:`~spgg_env.agents.engine.Engine`. The driver cuts the missing episodes of every
observation mode into contiguous chunks, keeps every worker busy with one chunk at a time, and
yields the records in the single-process order (mode by mode, episode by episode), so the
transcript is the same file. What makes the records equal: an episode's env seed and every
sampling seed derive from ``(root seed, episode index, position)`` only
(:mod:`spgg_env.seeding`), never from which worker or batch played it. (Texts are then
identical wherever the backend's numerics do not depend on the batch: greedy or seeded
sampling on an HTTP server, or fp32 locally; bf16 batched matmuls can round differently in
different batches.)

A worker that dies (a crashed node, an out-of-memory kill) is replaced by a new actor and its
chunk is played again from the start: records are only kept from chunks that finished, so
nothing is lost or duplicated.

Workers that only wait on HTTP (every backend ``kind: openai``) ask Ray for a quarter of a CPU;
local models ask for one CPU, or one GPU when they run on ``cuda``. With a pool of servers,
worker ``i`` keeps to server ``i mod n`` (``prefer=i``), so each server's prefix cache serves
one stream of related prompts.

Ray is an optional dependency: ``pip install -e ".[ray]"``.
"""

from __future__ import annotations

import copy
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from spgg_env.spec import GameSpec

#: Environment variables a worker inherits from the driver (task data paths, caches).
FORWARDED_ENV = ("SPGG_GSM8K_PATH", "SPGG_SUMMEVAL_PATH", "SPGG_CACHE", "HF_HOME",
                 "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "SPGG_TEST_WORKER_DIES")


def require_ray() -> Any:
    """Import ``ray`` or say how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError('distributed runs need Ray: pip install -e ".[ray]"') from None
    return ray


def worker_config(config: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The ensemble config of worker ``index``: HTTP backends keep to server ``index mod n``."""
    config = copy.deepcopy(dict(config))
    for holder in [config.get("defaults") or {}, *(config.get("agents") or [])]:
        backend = holder.get("backend")
        if isinstance(backend, dict) and backend.get("kind") == "openai":
            backend["prefer"] = index
    return config


def resources(config: Mapping[str, Any]) -> dict[str, float]:
    """What one worker asks Ray for (see the module docstring)."""
    kinds, devices = set(), set()
    defaults = (config.get("defaults") or {}).get("backend") or {}
    for agent in config.get("agents") or [{}]:
        backend = {**defaults, **(agent.get("backend") or {})}
        kinds.add(backend.get("kind", "transformers"))
        devices.add(str(backend.get("device", "auto")))
    if kinds == {"openai"}:
        return {"num_cpus": 0.25}
    if any(d.startswith("cuda") for d in devices):
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": 1}


class EpisodeWorker:
    """One Ray actor: an ensemble, its engine and a runner per game (see the module docstring).

    Args:
        config: The ensemble config (a mapping, as in ``run_meta.json``).
        overrides: ``build_ensemble`` overrides (model, device, dtype, max_new_tokens, n_agents).
        specs: The games (one per observation mode), as dicts.
        batch_size: The engine's ``max_batch``.
        schedule: The engine's schedule.
        seed: The run's root seed.
        index: This worker's index (it keeps to server ``index mod n`` of an HTTP pool).
    """

    def __init__(self, config: Mapping[str, Any], overrides: Mapping[str, Any],
                 specs: Sequence[Mapping[str, Any]], batch_size: int, schedule: str, seed: int,
                 index: int) -> None:
        from spgg_env.agents.engine import Engine
        from spgg_env.agents.ensemble import build_ensemble
        from spgg_env.agents.episodes import EpisodeRunner

        games = [GameSpec.from_dict(s) for s in specs]
        self.ensemble = build_ensemble(worker_config(config, index), **dict(overrides))
        engine = Engine(self.ensemble.backend_map(), max_batch=batch_size, schedule=schedule,
                        seed=seed)
        task = games[0].make_task()
        _check_sandbox(task)
        self.runners = {g.observation: EpisodeRunner(g, self.ensemble, engine, task=task)
                        for g in games}
        self.seed, self.index = seed, index

    def play(self, mode: str, first: int, count: int) -> list[dict[str, Any]]:
        """The records of episodes ``first .. first + count - 1`` of one observation mode."""
        _maybe_die(first)
        return [e.to_record() for e in self.runners[mode].run(count, seed=self.seed,
                                                               first_episode=first)]

    def describe(self) -> dict[str, Any]:
        """The worker's ensemble and backends, for ``run_meta.json``."""
        return {"index": self.index, "pid": os.getpid(), **self.ensemble.describe()}


class WorkerPool:
    """The Ray actors of a run, started once and reused for every chunk.

    Args:
        specs: The games, one per observation mode.
        config: The ensemble config mapping.
        workers: Ray actors.
        address: A Ray cluster address (``"auto"``, ``"ray://host:10001"``); ``None`` starts a
            local cluster (or uses the one already started in this process).
        overrides: ``build_ensemble`` overrides.
        batch_size: Each worker engine's ``max_batch``.
        schedule: Each worker engine's schedule.
        seed: The run's root seed.
        max_restarts: How many dead workers may be replaced before the run fails.
    """

    def __init__(self, specs: Sequence[GameSpec], config: Mapping[str, Any], *,
                 workers: int = 2, address: str | None = None,
                 overrides: Mapping[str, Any] | None = None, batch_size: int = 8,
                 schedule: str = "continuous", seed: int = 0, max_restarts: int = 3) -> None:
        ray = self.ray = require_ray()
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": max(os.cpu_count() or 1, 1)}))
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}  # data paths...
        self._remote = ray.remote(**resources(config))(EpisodeWorker).options(
            runtime_env={"env_vars": env} if env else None)
        self._args = (dict(config), dict(overrides or {}), [s.to_dict() for s in specs],
                      batch_size, schedule, seed)
        self.actors = {i: self._remote.remote(*self._args, i) for i in range(workers)}
        self.batch_size, self.max_restarts, self.restarts = batch_size, max_restarts, 0

    def ready(self) -> list[dict[str, Any]]:
        """Wait until every worker is up; return their descriptions."""
        return self.ray.get([a.describe.remote() for a in self.actors.values()])

    def play(self, jobs: Sequence[tuple[str, int, int]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Play ``(mode, first, count)`` chunks; yield ``(mode, record)`` in job order."""
        ray = self.ray
        todo = deque(jobs)
        running: dict[Any, tuple[int, tuple[str, int, int]]] = {}
        finished: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
        next_out = 0

        def dispatch(i: int) -> None:
            if todo:
                job = todo.popleft()
                running[self.actors[i].play.remote(*job)] = (i, job)

        for i in self.actors:
            dispatch(i)
        while next_out < len(jobs):
            while next_out < len(jobs) and jobs[next_out] in finished:
                for record in finished.pop(jobs[next_out]):
                    yield jobs[next_out][0], record
                next_out += 1
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1)
            i, job = running.pop(ready[0])
            try:
                finished[job] = ray.get(ready[0])
            except ray.exceptions.RayActorError:
                self.restarts += 1
                if self.restarts > self.max_restarts:
                    raise RuntimeError(
                        f"Ray workers died {self.restarts} times; last while playing {job[0]} "
                        f"episodes {job[1]}..{job[1] + job[2] - 1}") from None
                todo.appendleft(job)  # played again from the start on a fresh worker
                self.actors[i] = self._remote.remote(*self._args, i)
            dispatch(i)

    def close(self) -> None:
        """Stop the workers."""
        for actor in self.actors.values():
            self.ray.kill(actor)
        self.actors = {}


def chunks(specs: Sequence[GameSpec], episodes: int, size: int,
           done: Mapping[str, int] | None = None) -> list[tuple[str, int, int]]:
    """The missing episodes of every mode as ``(mode, first, count)`` chunks, in write order."""
    done = dict(done or {})
    return [(spec.observation, first, min(size, episodes - first))
            for spec in specs
            for first in range(min(done.get(spec.observation, 0), episodes), episodes, size)]


def play_distributed(
    specs: Sequence[GameSpec],
    config: Mapping[str, Any],
    *,
    episodes: int,
    done: Mapping[str, int] | None = None,
    chunk: int | None = None,
    pool: WorkerPool | None = None,
    **pool_options: Any,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Play the missing episodes of every game on Ray workers; yield ``(mode, record)`` in the
    single-process order.

    Args:
        specs: The games, one per observation mode, in the order they are written.
        config: The ensemble config mapping.
        episodes: Episodes per mode.
        done: Per mode, how many leading episodes are already written (``--resume``).
        chunk: Episodes per chunk (default ``2 * batch_size``).
        pool: Workers to reuse; default: a new :class:`WorkerPool` (closed at the end).
        **pool_options: :class:`WorkerPool` arguments (``workers``, ``address``, ``seed``...).

    Raises:
        RuntimeError: If workers keep dying.
    """
    own = pool is None
    pool = pool or WorkerPool(specs, config, **pool_options)
    try:
        yield from pool.play(chunks(specs, episodes, chunk or 2 * pool.batch_size, done))
    finally:
        if own:
            pool.close()


def _check_sandbox(task: Any) -> None:
    """A worker that would run generated code checks its sandbox at start, not mid-run."""
    sandbox = getattr(task, "sandbox", None)
    if sandbox is None:
        return
    probe = sandbox.run("print(6 * 7)")
    if not probe.passed or probe.stdout.strip() != "42":
        raise RuntimeError(f"the code sandbox does not work on this Ray node ({probe.status}: "
                           f"{probe.reason}); see docs/sandbox.md for what it needs")


def _maybe_die(first: int) -> None:
    """Test hook: ``SPGG_TEST_WORKER_DIES=<path>:<episode>`` kills the worker once."""
    hook = os.environ.get("SPGG_TEST_WORKER_DIES")
    if not hook:
        return
    path, _, episode = hook.rpartition(":")
    if int(episode) == first and not os.path.exists(path):
        open(path, "w").close()  # noqa: SIM115 - a marker: die only the first time
        os._exit(1)
