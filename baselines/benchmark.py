"""The reproducible benchmark: submissions (configs), runs, result files and their verification.

A **submission** is a YAML file (:class:`BenchConfig`) naming the method and its options, the
task, the split, the backend (model and revision), the decoding parameters and the seeds.

A **run** (:func:`run_benchmark`) solves every problem of the split once per seed and writes one
result directory::

    <results>/<name>/result.json     header: schema version, env id and version, package
                                     version and git commit, the config, backend and method
                                     descriptions, prompt-template hashes, the split (name,
                                     content hash, uids), the seeds, the SHA-256 of the
                                     episode file, aggregates (bootstrap 95% CIs), timing
    <results>/<name>/episodes.jsonl  one record per (seed, problem), in order

Episode records hold only deterministic data (no timings), so two runs of one config with
greedy decoding give byte-identical episode files and identical aggregates.

**Verification** (:func:`load_result`) refuses a result whose episode file does not match its
hash, whose episodes are missing, duplicated or out of place, whose split hash differs from the
pinned split, or whose stored aggregates differ from those recomputed from the records; the
error lists every problem found.

**Splits**: a task's own split name (``test``: the full test set) or a pinned, versioned subset
from ``spgg_env/splits/<version>.json`` (``small-v1``: 20 problems per task drawn with a
seeded generator from the test split, pinned by uid and content hash; see ``docs/benchmark.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

import spgg_env
from spgg_env import prompts, provenance
from spgg_env.agents.backend import Backend, Generation, GenerationParams, make_backend
from spgg_env.baselines.leaderboard import aggregate, compare_aggregates
from spgg_env.baselines.methods import Method, Outcome, Request, answer_key, make_method
from spgg_env.splits import pinned_splits, resolve_split
from spgg_env.tasks import TASKS, Problem, Task, make_task

SCHEMA = "spgg-bench-result/1"
CONFIG_SCHEMA = "spgg-bench-config/1"
RESULT_FILE = "result.json"
EPISODES_FILE = "episodes.jsonl"
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Keys every result header has.
HEADER_FIELDS = ("config", "split", "seeds", "n_episodes", "records_sha256", "aggregates", "timing")
#: Score details that vary between identical runs (timings); kept out of episode records.
VOLATILE_KEYS = frozenset({"duration_s", "latency_s", "wall_s", "elapsed_s"})
#: Fields every episode record has, with their types.
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "seed": int,
    "index": int,
    "uid": str,
    "final_answer": str,
    "score": (int, float),
    "parse_failure": bool,
    "llm_calls": int,
    "prompt_tokens": int,
    "completion_tokens": int,
    "tokens": int,
    "calls": list,
}


class ResultError(ValueError):
    """A result file failed verification; ``problems`` lists every reason."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n  - ".join(self.problems)
        super().__init__(f"result {str(path)!r} is rejected:\n  - {lines}")


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class BenchConfig:
    """One submission.

    Attributes:
        name: Unique submission name (the result directory's name).
        method: Method registry name (``single_agent``, ``cot``, ``self_consistency``,
            ``debate``, ``econ``, ``spgg``).
        task: Task name (``humaneval``, ``mmlu``, ``gsm8k``, ``summeval``, ``arith``).
        split: A pinned split version (``small-v1``) or one of the task's splits (``test``).
        method_options: Keyword options of the method.
        task_options: Keyword options of ``make_task``.
        backend: ``kind`` (``transformers`` or ``openai``) plus the backend's keyword
            arguments (``model``, ``revision``, ``dtype``, ``base_url``...).
        decoding: :class:`~spgg_env.agents.backend.GenerationParams` fields.
        seeds: Run seeds; each seed solves the whole split once.
        batch_size: Most LLM calls per backend batch.
        bootstrap_samples: Bootstrap resamples of the confidence intervals.
        bootstrap_seed: Seed of the bootstrap generator.
        limit: Solve only the first ``limit`` problems (smoke runs; the leaderboard refuses
            such partial results).
    """

    name: str
    method: str
    task: str
    split: str = "small-v1"
    method_options: Mapping[str, Any] = field(default_factory=dict)
    task_options: Mapping[str, Any] = field(default_factory=dict)
    backend: Mapping[str, Any] = field(
        default_factory=lambda: {"kind": "transformers", "model": "embedded"}
    )
    decoding: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 8
    bootstrap_samples: int = 1000
    bootstrap_seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"config name must be a plain file name, got {self.name!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct ints, got {self.seeds!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {self.limit!r}")
        self.generation_params()  # validates the decoding fields

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchConfig:
        """Build from a plain mapping (as read from YAML), refusing unknown keys.

        Raises:
            ValueError: On unknown or missing keys, or bad values.
        """
        data = dict(data)
        schema = data.pop("schema", CONFIG_SCHEMA)
        if schema != CONFIG_SCHEMA:
            raise ValueError(f"config schema {schema!r} is not supported; use {CONFIG_SCHEMA!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")
        missing = sorted({"name", "method", "task"} - set(data))
        if missing:
            raise ValueError(f"config lacks required key(s) {missing}")
        if "seeds" in data:
            data["seeds"] = tuple(int(s) for s in data["seeds"])
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BenchConfig:
        """Read a submission file."""
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        if not isinstance(data, Mapping):
            raise ValueError(f"config {str(path)!r} must be a YAML mapping, got {type(data)}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as error:
            raise ValueError(f"bad config {str(path)!r}: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (stored in result files)."""
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        return {"schema": CONFIG_SCHEMA, **json.loads(json.dumps(out))}

    def generation_params(self) -> GenerationParams:
        """The decoding parameters as :class:`GenerationParams`."""
        try:
            return GenerationParams(**self.decoding)
        except TypeError as error:
            valid = [f.name for f in dataclasses.fields(GenerationParams)]
            raise ValueError(
                f"bad decoding key in {dict(self.decoding)}; valid: {valid}"
            ) from error


# ----------------------------------------------------------------------------- splits
# ----------------------------------------------------------------------------- running
def call_seed(seed: int, round_index: int, batch_index: int) -> int:
    """The backend seed of one batch, derived from the run seed."""
    return int(np.random.SeedSequence([seed, round_index, batch_index]).generate_state(1)[0])


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


def run_episodes(
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
    """Solve ``problems`` with ``method``, driving all their programs in lockstep.

    In each round every unfinished program's requests are gathered and sent to the backend in
    batches of ``batch_size``; each program then receives its own generations. Each problem's
    program gets its own generator, seeded from ``(seed, index)``.

    Returns:
        One episode record per problem, in order.
    """
    programs, pending, outcomes = {}, {}, {}
    calls: dict[int, list[tuple[Request, Generation]]] = {i: [] for i in range(len(problems))}
    for i, problem in enumerate(problems):
        rng = np.random.default_rng([seed, i])
        programs[i] = method.solve(task, problem, params, rng)
        _advance(programs, pending, outcomes, i, None)
    bar = tqdm(total=len(problems), desc=f"{method.name} seed {seed}", disable=not progress)
    round_index = 0
    while pending:
        flat = [(i, request) for i in sorted(pending) for request in pending[i]]
        replies: list[Generation] = []
        for b, start in enumerate(range(0, len(flat), batch_size)):
            chunk = flat[start : start + batch_size]
            got = backend.generate(
                [r.prompt for _, r in chunk],
                [r.params for _, r in chunk],
                seed=call_seed(seed, round_index, b),
            )
            if len(got) != len(chunk):
                raise RuntimeError(f"backend returned {len(got)} generations for {len(chunk)}")
            replies.extend(got)
        position = 0
        for i in sorted(pending):
            requests = pending.pop(i)
            mine = replies[position : position + len(requests)]
            position += len(requests)
            calls[i].extend(zip(requests, mine, strict=True))
            _advance(programs, pending, outcomes, i, mine)
            bar.update(int(i in outcomes))
        round_index += 1
    bar.close()
    return [
        episode_record(task, problem, seed, i, outcomes[i], calls[i])
        for i, problem in enumerate(problems)
    ]


def _advance(programs: dict, pending: dict, outcomes: dict, i: int, sent: Any) -> None:
    """Send a program its generations (or start it); file its next requests or its outcome."""
    try:
        requests = programs[i].send(sent)
    except StopIteration as stop:
        if not isinstance(stop.value, Outcome):
            raise TypeError(
                f"a method program must return an Outcome, got {stop.value!r}"
            ) from None
        outcomes[i] = stop.value
        return
    if not requests:
        raise ValueError("a method program yielded no requests; yield at least one Request")
    pending[i] = list(requests)


def run_episode(
    method: Method,
    task: Task,
    problem: Problem,
    backend: Backend,
    params: GenerationParams,
    seed: int = 0,
) -> dict[str, Any]:
    """Solve one problem: ``(task, problem, backend, params, seed) -> episode record``."""
    method.prepare(task, [problem], np.random.default_rng(seed))
    return run_episodes(method, task, [problem], backend, params, seed)[0]


def canonical_line(record: Mapping[str, Any]) -> str:
    """A record as one canonical JSON line."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def records_hash(records: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 over the records' canonical lines."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(canonical_line(record).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def run_benchmark(
    config: BenchConfig,
    results_dir: str | Path,
    *,
    backend: Backend | None = None,
    task: Task | None = None,
    splits_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Run a submission and write its result directory ``<results_dir>/<config.name>``.

    Args:
        config: The submission.
        results_dir: Parent folder of result directories.
        backend: A ready backend (default: built from ``config.backend``).
        task: A ready task (default: ``make_task(config.task, **config.task_options)``).
        splits_dir: Folder of pinned split files (default ``spgg_env/splits``).
        progress: Show tqdm progress bars.

    Returns:
        The result directory (written atomically: a finished run or nothing).
    """
    task = task or make_task(config.task, **config.task_options)
    if task.name != config.task:
        raise ValueError(f"config names task {config.task!r} but got task {task.name!r}")
    problems, split_hash = resolve_split(task, config.split, splits_dir)
    if config.limit is not None:
        problems = problems[: config.limit]
    method = make_method(config.method, **config.method_options)
    backend = backend or make_backend(config.backend)
    params = config.generation_params()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    records: list[dict[str, Any]] = []
    for seed in config.seeds:
        method.prepare(task, problems, np.random.default_rng(seed))
        records += run_episodes(
            method, task, problems, backend, params, seed,
            batch_size=config.batch_size, progress=progress,
        )  # fmt: skip
    wall = time.perf_counter() - clock
    header = {
        "schema": SCHEMA,
        "env_id": f"spgg/{TASKS[task.name][1]}-v0" if task.name in TASKS else task.name,
        "env_version": spgg_env.__version__,
        "task_version": task.version,
        "package_version": spgg_env.__version__,
        "git": provenance.git_commit(),
        "environment": provenance.environment(),
        "config": config.to_dict(),
        "method": method.describe(),
        "backend": backend.describe(),
        "prompt_template_hashes": {
            "env": prompts.template_hash(),
            **method.describe()["template_hashes"],
        },
        "split": {
            "name": config.split,
            "hash": split_hash,
            "uids": [p.uid for p in problems],
            "limit": config.limit,
        },
        "seeds": list(config.seeds),
        "n_episodes": len(records),
        "records_sha256": records_hash(records),
        "aggregates": aggregate(
            records,
            bootstrap_samples=config.bootstrap_samples,
            bootstrap_seed=config.bootstrap_seed,
        ),
        "timing": {
            "started_utc": started,
            "wall_s": wall,
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        },
    }
    return _write_result(Path(results_dir) / config.name, header, records)


def _write_result(out: Path, header: dict[str, Any], records: Sequence[Mapping]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    (tmp / EPISODES_FILE).write_text(
        "".join(canonical_line(r) + "\n" for r in records), encoding="utf-8"
    )
    (tmp / RESULT_FILE).write_text(json.dumps(header, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        out.rename(old)
        tmp.rename(out)
        for path in old.iterdir():
            path.unlink()
        old.rmdir()
    else:
        tmp.rename(out)
    return out


# ----------------------------------------------------------------------------- verification
def load_result(
    path: str | Path, *, splits_dir: str | Path | None = None, allow_partial: bool = False
) -> dict[str, Any]:
    """Read and verify a result directory (or its ``result.json``).

    Checks: schema; the episode file against its SHA-256 and episode count; every record's
    fields; one record per (seed, problem) in the split's order, none missing or extra; a full
    run (no ``limit``) unless ``allow_partial``; the split hash against the pinned split (or,
    for a task's own split, the task's data); a trained method's policy checkpoint against its
    SHA-256; every stored aggregate against the records.

    Returns:
        ``{"path", "header", "records"}``.

    Raises:
        ResultError: Listing every problem found.
    """
    path = Path(path)
    folder = path.parent if path.name == RESULT_FILE else path
    try:
        header = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        lines = (folder / EPISODES_FILE).read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise ResultError(folder, [f"cannot read the result: {error}"]) from error
    if header.get("schema") != SCHEMA:
        raise ResultError(folder, [f"schema is {header.get('schema')!r}, expected {SCHEMA!r}"])
    absent = [key for key in HEADER_FIELDS if key not in header]
    if absent:
        raise ResultError(folder, [f"the header lacks {absent}"])
    problems = _check_records(header, records, allow_partial)
    problems += _check_split(header, splits_dir)
    problems += _check_policy(header)
    if not any("field" in p for p in problems) and records:
        config = header["config"]
        recomputed = aggregate(
            records,
            bootstrap_samples=config["bootstrap_samples"],
            bootstrap_seed=config["bootstrap_seed"],
        )
        problems += compare_aggregates(header.get("aggregates", {}), recomputed)
    if problems:
        raise ResultError(folder, problems)
    return {"path": str(folder), "header": header, "records": records}


def _check_records(
    header: Mapping[str, Any], records: Sequence[Mapping[str, Any]], allow_partial: bool
) -> list[str]:
    problems = []
    digest = records_hash(records)
    if digest != header.get("records_sha256"):
        problems.append(
            f"{EPISODES_FILE} does not match its hash (file {digest}, header "
            f"{header.get('records_sha256')}): the episodes were edited, added or removed"
        )
    if len(records) != header.get("n_episodes"):
        problems.append(
            f"{len(records)} episode records but the header says {header.get('n_episodes')}"
        )
    for n, record in enumerate(records):
        for key, kind in RECORD_FIELDS.items():
            value = record.get(key)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                problems.append(f"episode line {n + 1}: field {key!r} is {value!r}")
                break
    if any("field" in p for p in problems):
        return problems
    split, seeds = header["split"], header["seeds"]
    if split.get("limit") is not None and not allow_partial:
        problems.append(f"partial run (limit={split['limit']}): not every problem was solved")
    expected = {(s, i): uid for s in seeds for i, uid in enumerate(split["uids"])}
    seen: set[tuple[int, int]] = set()
    for record in records:
        key = (record["seed"], record["index"])
        if key not in expected:
            problems.append(f"unexpected episode seed={key[0]} index={key[1]}")
        elif record["uid"] != expected[key]:
            problems.append(f"episode seed={key[0]} index={key[1]} has uid {record['uid']!r}, "
                            f"the split says {expected[key]!r}")  # fmt: skip
        elif key in seen:
            problems.append(f"duplicate episode seed={key[0]} uid={record['uid']!r}")
        seen.add(key)
    for key in sorted(set(expected) - seen):
        problems.append(f"missing episode seed={key[0]} uid={expected[key]!r}")
    return problems


def _check_policy(header: Mapping[str, Any]) -> list[str]:
    """A result of a trained method names its policy checkpoint and the file's SHA-256
    (``method.policy``); the checkpoint (relative paths: from the working directory, else the
    repository root) must still have that hash."""
    policy = header.get("method", {}).get("policy")
    if not policy:
        return []
    path = Path(policy["checkpoint"])
    found = next((p for p in (path, REPO_ROOT / path) if p.is_file()), None)
    if found is None:
        return [f"policy checkpoint {policy['checkpoint']!r} is not here (looked in the working "
                f"directory and {str(REPO_ROOT)!r}): the trained policy cannot be verified"]
    digest = provenance.file_sha256(found)
    if digest != policy["sha256"]:
        return [f"policy checkpoint {str(found)!r} has SHA-256 {digest} but the result was made "
                f"with {policy['sha256']}: the policy changed since the run"]
    return []


def _check_split(header: Mapping[str, Any], splits_dir: str | Path | None) -> list[str]:
    split, task_name = header["split"], header["config"]["task"]
    name, stored = split["name"], split["hash"]
    try:
        entry = pinned_splits(name, splits_dir).get("tasks", {}).get(task_name)
    except ValueError:
        entry = None
    if entry is not None:
        expected, origin = entry["hash"], f"pinned split {name!r}"
        if split["uids"] != entry["uids"][: len(split["uids"])]:
            return [f"the split's uids differ from those pinned in {name!r} for {task_name!r}"]
        if split.get("limit") is not None:
            return []  # a partial run hashes its full split; its uids were checked above
    else:
        try:
            task = make_task(task_name, **header["config"].get("task_options", {}))
            expected, origin = task.split_hash(name), f"the data of {task_name!r} split {name!r}"
        except (ValueError, ImportError, OSError) as error:
            return [f"cannot check split {name!r} of {task_name!r}: {error}"]
    if stored != expected:
        return [f"split hash {stored} does not match {origin} ({expected})"]
    return []
