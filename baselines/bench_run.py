"""Running a benchmark submission on the episode engine.

:func:`run_benchmark` solves every problem of the split once per seed and writes one result
directory (:mod:`spgg_env.baselines.bench_results`). For each seed, the method's programs (one
per problem, :class:`~spgg_env.baselines.methods.SolveContext` giving the problem, its index and
the seed) run on one :class:`~spgg_env.agents.engine.Engine` over the config's backend, keyed
``"default"``, with ``max_batch = batch_size`` and continuous scheduling: calls of different
problems share backend batches. A request without a seed samples with
``derive_seed(seed, GENERATION, problem index, request number)``, so a record never depends on
batching or on which other problems ran (with a backend whose rows do not influence each other;
a real model's batched kernels may still round differently with another batch size).

Episode records hold only deterministic data (no timings), so two runs of one config on the
same machine give byte-identical episode files and identical aggregates.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import spgg_env
from spgg_env import prompts, provenance, seeding
from spgg_env.agents.backend import Backend, Generation, GenerationParams, make_backend
from spgg_env.agents.engine import Engine, Program, Request
from spgg_env.baselines.bench_config import BenchConfig
from spgg_env.baselines.bench_results import (
    SCHEMA,
    records_hash,
    refuse_existing,
    write_result,
)
from spgg_env.baselines.leaderboard import aggregate
from spgg_env.baselines.methods import Method, Outcome, SolveContext, answer_key
from spgg_env.registration import TEXT_VERSION
from spgg_env.splits import pinned_splits, resolve_split
from spgg_env.tasks import TASKS, Problem, Task

#: The backend key of a benchmark run (one backend).
BACKEND = "default"
#: Score details that vary between identical runs (timings); kept out of episode records.
VOLATILE_KEYS = frozenset({"duration_s", "latency_s", "wall_s", "elapsed_s"})


def episode_record(
    task: Task,
    problem: Problem,
    seed: int,
    index: int,
    outcome: Outcome,
    calls: Sequence[tuple[Request, Generation]],
) -> dict[str, Any]:
    """Score an outcome and build its episode record (deterministic data only)."""
    score = task.score_final(problem, outcome.final_text)
    prompt_tokens = sum(g.prompt_tokens for _, g in calls)
    completion_tokens = sum(g.completion_tokens for _, g in calls)
    record = {
        "seed": seed,
        "index": index,
        "uid": problem.uid,
        "final_answer": outcome.final_text,
        "extracted": score.extracted,
        "score": float(score.value),
        "parse_failure": answer_key(score.extracted) is None,
        "error": score.error,
        "score_details": {k: v for k, v in score.details.items() if k not in VOLATILE_KEYS},
        "llm_calls": len(calls),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens": prompt_tokens + completion_tokens,
        "calls": [
            {
                "role": r.role,
                "params": r.params.to_dict(),
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
                "finish_reason": g.finish_reason,
                "prompt_truncated": g.prompt_truncated,
                "error": g.error,
                "text": g.text,
            }
            for r, g in calls
        ],
        "details": outcome.details,
    }
    return json.loads(json.dumps(record, default=str))


def recorded(program: Program) -> Program:
    """``program`` unchanged for the engine; its outcome becomes ``(outcome, calls)`` with
    every ``(request, generation)`` pair it made, in order.

    Raises:
        TypeError: If the program returns something other than an :class:`Outcome`.
    """
    calls: list[tuple[Request, Generation]] = []
    sent: list[Generation] | None = None
    while True:
        try:
            requests = program.send(sent)
        except StopIteration as stop:
            if not isinstance(stop.value, Outcome):
                raise TypeError(f"a method program must return an Outcome, got "
                                f"{stop.value!r:.80}") from None
            return stop.value, calls
        sent = yield requests
        calls += zip(requests, sent, strict=True)


def solve_problems(
    method: Method,
    task: Task,
    problems: Sequence[Problem],
    backend: Backend,
    params: GenerationParams,
    seed: int,
    *,
    batch_size: int = 8,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Solve ``problems`` with ``method`` on one engine (see the module docstring).

    Returns:
        One episode record per problem, in order.
    """
    engine = Engine({BACKEND: backend}, max_batch=batch_size, seed=seed)
    contexts = [SolveContext(task, p, params, i, seed, engine.backends)
                for i, p in enumerate(problems)]
    outcomes = engine.run(recorded(method.solve(ctx)) for ctx in contexts)
    bar = tqdm(outcomes, total=len(problems), desc=f"{method.name} seed {seed}",
               disable=not progress)
    return [episode_record(task, ctx.problem, seed, ctx.index, outcome, calls)
            for ctx, (outcome, calls) in zip(contexts, bar, strict=True)]


def run_episode(
    method: Method,
    task: Task,
    problem: Problem,
    backend: Backend,
    params: GenerationParams,
    seed: int = 0,
) -> dict[str, Any]:
    """Solve one problem: ``(task, problem, backend, params, seed) -> episode record``."""
    method.prepare(task, [problem], prepare_rng(seed))
    return solve_problems(method, task, [problem], backend, params, seed)[0]


def prepare_rng(seed: int) -> Any:
    """The generator a method prepares a run seed with (e.g. draws few-shot exemplars)."""
    return seeding.rng(seed, seeding.METHOD, "prepare")


def resolve_problems(config: BenchConfig, task: Task, splits_dir: str | Path | None
                     ) -> tuple[tuple[Problem, ...], str]:
    """The problems a config evaluates (its first ``limit``) and their split's content hash.

    Raises:
        ValueError: If the split is unknown, its pinned data changed, or a game's split is not
            the pinned split's source.
    """
    if config.game is not None and config.split not in task.splits:
        source = pinned_splits(config.split, splits_dir).get("tasks", {}).get(task.name, {})
        if source and source.get("source_split") != config.game.split:
            raise ValueError(f"split {config.split!r} draws from {task.name!r} split "
                             f"{source.get('source_split')!r} but the game plays split "
                             f"{config.game.split!r}; set the game's split to it")
    elif config.game is not None and config.split != config.game.split:
        raise ValueError(f"the config evaluates split {config.split!r} but the game plays split "
                         f"{config.game.split!r}")
    problems, split_hash = resolve_split(task, config.split, splits_dir)
    return (problems[: config.limit] if config.limit is not None else problems), split_hash


def run_benchmark(
    config: BenchConfig,
    results_dir: str | Path,
    *,
    backend: Backend | Callable[[], Backend] | None = None,
    task: Task | None = None,
    splits_dir: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Run a submission and write its result directory ``<results_dir>/<config.name>``.

    Everything that can be refused is refused before the backend loads: an existing result
    (unless ``overwrite``), the split, the method's trained policy.

    Args:
        config: The submission.
        results_dir: Parent folder of result directories.
        backend: A ready backend, or a function that returns one (called once everything
            else is checked); default: built from ``config.backend``.
        task: A ready task (default: built from the config).
        splits_dir: Folder of pinned split files (default ``spgg_env/splits``).
        progress: Show tqdm progress bars.
        overwrite: Replace an existing result directory.

    Returns:
        The result directory (written atomically: a finished run or nothing).

    Raises:
        FileExistsError: If the result directory exists and ``overwrite`` is False.
        ValueError: On a bad split, a task that is not the config's, or a trained policy made
            for another game.
    """
    out, task, problems, split_hash, method = _checked_run(config, results_dir, task,
                                                           splits_dir, overwrite)
    if backend is None:
        backend = make_backend(config.backend)
    elif not hasattr(backend, "generate"):
        backend = backend()
    params = config.generation_params()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock, cpu_clock = time.perf_counter(), time.process_time()
    records: list[dict[str, Any]] = []
    for seed in config.seeds:
        method.prepare(task, problems, prepare_rng(seed))
        records += solve_problems(method, task, problems, backend, params, seed,
                                  batch_size=config.batch_size, progress=progress)
    return _finish(out, config, task, method, backend.describe(), problems, split_hash,
                   records, started, time.perf_counter() - clock, overwrite,
                   cpu=time.process_time() - cpu_clock)


def _checked_run(config: BenchConfig, results_dir: str | Path, task: Task | None,
                 splits_dir: str | Path | None, overwrite: bool
                 ) -> tuple[Path, Task, tuple[Problem, ...], str, Method]:
    """Everything a run refuses before a backend loads; the run's task, problems, method."""
    out = Path(results_dir) / config.name
    if not overwrite:
        refuse_existing(out)
    task = task or config.make_task()
    if task.name != config.task:
        raise ValueError(f"config names task {config.task!r} but got task {task.name!r}")
    problems, split_hash = resolve_problems(config, task, splits_dir)
    method = config.make_method()
    method.prepare(task, problems, prepare_rng(config.seeds[0]))  # e.g. a trained policy
    return out, task, problems, split_hash, method


def _finish(out: Path, config: BenchConfig, task: Task, method: Method,
            backend: Mapping[str, Any], problems: Sequence[Problem], split_hash: str,
            records: list[dict[str, Any]], started: str, wall: float, overwrite: bool,
            cpu: float | None = None) -> Path:
    """Write the result; ``timing``: start, wall seconds of the episodes (model load excluded),
    the machine and, for a run in this process, ``cpu_s``: its CPU seconds over the same span
    (all threads), and the whole process's use so far (:func:`provenance.process_usage`:
    ``process_cpu_s`` with imports and model load, ``peak_rss_mib``; for a command that runs one
    config, what ``/usr/bin/time`` would say of it). A Ray run's workers are not counted, so it
    has none of these."""
    header = result_header(config, task, method, backend, problems, split_hash, records)
    header["timing"] = {
        "started_utc": started,
        "wall_s": wall,
        **({} if cpu is None else {"cpu_s": cpu, **provenance.process_usage()}),
        "machine": provenance.machine_description(),
    }
    return write_result(out, header, records, overwrite=overwrite)


def solve_seed(config: Mapping[str, Any], seed: int, splits_dir: str | None = None
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One ``(config, seed)`` pair from scratch (what a Ray task runs): its episode records and
    the backend's description."""
    config = BenchConfig.from_dict(config)
    task = config.make_task()
    problems, _ = resolve_problems(config, task, splits_dir)
    method = config.make_method()
    method.prepare(task, problems, prepare_rng(seed))
    backend = make_backend(config.backend)
    records = solve_problems(method, task, problems, backend, config.generation_params(), seed,
                             batch_size=config.batch_size)
    return records, backend.describe()


def run_benchmarks_on_ray(
    configs: Sequence[BenchConfig],
    results_dir: str | Path,
    *,
    address: str | None = None,
    splits_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Run every ``(config, seed)`` pair as a Ray task and finalise each result on the driver.

    The result files are those of :func:`run_benchmark` (the same episode records, in the same
    order; the header differs only in its timing). A pair asks Ray for one CPU, or one GPU
    when its backend runs on ``cuda``, or a quarter CPU when it only waits on an HTTP server.

    Raises:
        ImportError: Without Ray (``pip install -e ".[ray]"``).
    """
    from spgg_env.agents.distributed import require_ray, resources

    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": max(os.cpu_count() or 1, 1)}))
    checked = [_checked_run(c, results_dir, None, splits_dir, overwrite) for c in configs]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    futures = {}
    for config in configs:
        remote = ray.remote(**resources({"defaults": {"backend": dict(config.backend)}}))(
            solve_seed)
        for seed in config.seeds:
            futures[(config.name, seed)] = remote.remote(
                config.to_dict(), seed, None if splits_dir is None else str(splits_dir))
    bar = tqdm(total=len(futures), desc="bench on ray", disable=not progress)
    done: dict[tuple[str, int], tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    pending = {ref: key for key, ref in futures.items()}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        done[pending.pop(ready[0])] = ray.get(ready[0])
        bar.update(1)
    bar.close()
    wall = time.perf_counter() - clock
    paths = []
    for config, (out, task, problems, split_hash, method) in zip(configs, checked, strict=True):
        records = [r for seed in config.seeds for r in done[(config.name, seed)][0]]
        backend = done[(config.name, config.seeds[0])][1]
        paths.append(_finish(out, config, task, method, backend, problems, split_hash, records,
                             started, wall, overwrite))
    return paths


def result_header(config: BenchConfig, task: Task, method: Method, backend: Mapping[str, Any],
                  problems: Sequence[Problem], split_hash: str,
                  records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Everything a result file says about its run except the timing."""
    described = method.describe()
    style = config.game.prompt_style if config.game is not None else "default"
    return {
        "schema": SCHEMA,
        "env_id": (f"spgg/{TASKS[task.name][1]}-{TEXT_VERSION}" if task.name in TASKS
                   else task.name),
        "env_version": TEXT_VERSION,
        "task_version": task.version,
        "package_version": spgg_env.__version__,
        "git": provenance.git_commit(),
        "environment": provenance.environment(),
        "config": config.to_dict(),
        "method": described,
        "backend": dict(backend),
        "engine": {"schedule": "continuous", "max_batch": config.batch_size,
                   "request_seed": "derive_seed(seed, GENERATION, problem index, request number)"},
        "prompt_template_hashes": {"env": prompts.template_hash(style),
                                   **described["template_hashes"]},
        "split": {
            "name": config.split,
            "hash": split_hash,
            "uids": [p.uid for p in problems],
            "limit": config.limit,
        },
        "seeds": list(config.seeds),
        **({"judge": judge} if (judge := task.judge_description()) else {}),
        "n_episodes": len(records),
        "records_sha256": records_hash(records),
        "aggregates": aggregate(
            records,
            bootstrap_samples=config.bootstrap_samples,
            bootstrap_seed=config.bootstrap_seed,
        ),
    }
