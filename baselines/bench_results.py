"""Benchmark result directories: writing them once, and verifying them before anyone trusts them.

A run writes one directory (atomically: a finished run or nothing)::

    <results>/<name>/result.json     header: schema, env id and version, package version and
                                     git commit, the config (with the game spec for a
                                     game-playing method), backend, method and engine
                                     descriptions, prompt-template hashes, the split (name,
                                     content hash, uids), the seeds, the SHA-256 of the episode
                                     file, aggregates (bootstrap 95% CIs), timing
    <results>/<name>/episodes.jsonl  one record per (seed, problem), in order

An existing result directory is never replaced unless the caller says so (``overwrite``).

**Verification** (:func:`load_result`) refuses a result whose episode file does not match its
hash, whose episodes are missing, duplicated or out of place, whose split hash differs from the
pinned split, whose trained policy's checkpoint changed, whose stored aggregates differ from
those recomputed from the records, or with an LLM call that failed (``finish_reason`` "error":
the run recorded the failure and scored the problem, but a board built on it would rank the
backend's outages, not the method); the error lists every problem found. Results of the previous
schema (``spgg-bench-result/1``, written by the benchmark's own loop before the episode engine)
are verified the same way: their records have the same fields.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spgg_env import provenance
from spgg_env.baselines.leaderboard import aggregate, compare_aggregates, result_task
from spgg_env.splits import pinned_splits
from spgg_env.tasks import make_task

SCHEMA = "spgg-bench-result/2"
#: Result schemas this version verifies.
READABLE_SCHEMAS = ("spgg-bench-result/1", SCHEMA)
RESULT_FILE = "result.json"
EPISODES_FILE = "episodes.jsonl"
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Keys every result header has.
HEADER_FIELDS = ("config", "split", "seeds", "n_episodes", "records_sha256", "aggregates", "timing")
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


# ----------------------------------------------------------------------------- writing
def refuse_existing(out: Path) -> None:
    """Refuse to write a result where one already is.

    Raises:
        FileExistsError: Naming the folder and the ways out.
    """
    if out.exists():
        raise FileExistsError(f"{str(out)!r} already holds a result; pass --overwrite to "
                              "replace it, --skip-existing to keep it, or choose another "
                              "--results-dir")


def write_result(out: Path, header: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                 *, overwrite: bool = False) -> Path:
    """Write ``result.json`` and ``episodes.jsonl`` into ``out`` atomically.

    Raises:
        FileExistsError: If ``out`` exists and ``overwrite`` is False.
    """
    if not overwrite:
        refuse_existing(out)
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
        shutil.rmtree(old)
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
    if header.get("schema") not in READABLE_SCHEMAS:
        raise ResultError(folder, [f"schema is {header.get('schema')!r}, expected one of "
                                   f"{list(READABLE_SCHEMAS)}"])
    absent = [key for key in HEADER_FIELDS if key not in header]
    if absent:
        raise ResultError(folder, [f"the header lacks {absent}"])
    problems = _check_records(header, records, allow_partial)
    problems += failed_calls(records)
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


def failed_calls(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line naming the LLM calls that failed (``finish_reason`` "error" or an ``error``),
    how many, and the first one; nothing when every call returned."""
    calls = [(record, call) for record in records for call in record.get("calls") or []
             if isinstance(call, Mapping)]
    failed = [(record, call) for record, call in calls
              if call.get("error") or call.get("finish_reason") == "error"]
    if not failed:
        return []
    record, call = failed[0]
    return [f"{len(failed)} of {len(calls)} LLM calls failed (first: seed {record.get('seed')} "
            f"uid {record.get('uid')!r}: {call.get('error')!r}); rerun the submission"]


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
    split = header["split"]
    task_name, task_options = result_task(header)
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
            task = make_task(task_name, **task_options)
            expected, origin = task.split_hash(name), f"the data of {task_name!r} split {name!r}"
        except (ValueError, ImportError, OSError, RuntimeError) as error:
            return [f"cannot check split {name!r} of {task_name!r}: {error}"]
    if stored != expected:
        return [f"split hash {stored} does not match {origin} ({expected})"]
    return []
