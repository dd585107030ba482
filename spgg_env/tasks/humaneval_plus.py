"""HumanEval+-style extra inputs: seeded mutations of the original test inputs, checked offline.

A lookup table of the 164 problems' original test inputs passes HumanEval's own tests; these
extra inputs make it fail. ``HumanEvalTask(tests="plus")`` runs them after the original tests.

How the shipped file ``humaneval_plus.jsonl`` is made (:func:`generate`, deterministic for a
seed; regenerate with ``python -m spgg_env.tasks.humaneval_plus --seed 0``):

1. **Record** the original inputs: the canonical solution runs the problem's own tests in the
   sandbox, and the trusted side keeps every call's arguments.
2. **Mutate**, keeping each argument's type and shape and staying within what the original
   inputs at that argument look like (:func:`mutants`, :func:`mutate`): an int moves by +-1 or
   +-2 or to another value, inside the range seen there; a float likewise (rounded to 3
   decimals); a string with digits has one digit replaced by a digit seen there (formats such
   as ``"5 apples and 6 oranges"`` or ``"03-11-2000"`` survive); a string of words has two
   words swapped (vocabularies such as ``"three one five"`` survive); any other string has one
   character replaced by one of the same class (lower, upper, other) seen there; a list or
   tuple has one element mutated or two swapped; a dict has one value mutated. Lengths never
   change. One or two arguments are mutated; a mutant equal to an original input or to
   another mutant is dropped.
3. **Keep promises**: a mutant that breaks a precondition stated in its problem's docstring is
   dropped (:data:`CONTRACTS`: 12 problems, each rule quoting its docstring, e.g. balanced
   parentheses for HumanEval/1, an N x N permutation grid for HumanEval/129).
4. **Run the canonical solution** on the mutants (sandboxed, 1 s per call); a mutant on which
   it raises or times out is dropped.
5. **Keep** the first ``per_problem`` survivors with the canonical outputs, then verify that
   the canonical solution passes the whole set (dropping any input it does not).

HumanEval/32 (``find_zero``) has many right answers, so its results are checked as roots of
the reference ``poly`` (:data:`COMPARE`). Known limit: other docstring promises are not
checked, so an input can still fall outside a problem's preconditions, where the canonical
solution's answer is one of several defensible ones (see
``docs/reward_robustness.md``).

File format: JSON lines; the first holds ``{"meta": {...}}`` (seed, count, generator version),
then one line per problem with ``task_id``, ``compare``, ``count`` and ``cases``, the
:func:`spgg_env.grading.encode` text of ``[[args, expected], ...]``. :data:`PLUS_SHA256` pins the
file; :func:`load_plus` refuses any other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from spgg_env import grading

PLUS_FILE = Path(__file__).with_name("humaneval_plus.jsonl")
#: SHA-256 of :data:`PLUS_FILE` as shipped (seed 0, 20 inputs per problem).
PLUS_SHA256 = "1504102813e136b0aefb78b107956afe00b90e14d2b2974929fc86f36de027e2"
#: Bumped whenever :func:`mutate` or :func:`generate` change what they produce.
GENERATOR_VERSION = "1"
#: Longest a canonical solution may take on one mutant before the mutant is dropped.
CALL_TIMEOUT_S = 1.0
#: Problems whose answer is not unique: how their results are checked instead of ``==``.
COMPARE = {"HumanEval/32": "poly_root"}


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def _distinct(items: list) -> bool:
    return len(set(items)) == len(items)


#: Input promises that a mutant can break, quoted from the problems' docstrings; a mutant that
#: breaks its problem's promise is dropped (the canonical answer there is not the only one).
CONTRACTS: dict[str, Callable[[list], bool]] = {
    # "Separate groups are balanced (each open brace is properly closed)"
    "HumanEval/1": lambda a: _balanced(a[0]),
    # "multiple groups for nested parentheses separated by spaces"
    "HumanEval/6": lambda a: all(_balanced(group) for group in a[0].split()),
    # "list xs having even number of coefficients and largest non zero coefficient"
    "HumanEval/32": lambda a: len(a[0]) % 2 == 0 and a[0][-1] != 0,
    # "Assume n > 1 and is not a prime."
    "HumanEval/59": lambda a: a[0] > 1 and not _is_prime(a[0]),
    # "The given list is guaranteed to have unique elements."
    "HumanEval/109": lambda a: _distinct(a[0]),
    # "0 <= k <= len(arr)"
    "HumanEval/120": lambda a: 0 <= a[1] <= len(a[0]),
    # "1 <= k <= len(arr)"
    "HumanEval/122": lambda a: 1 <= a[1] <= len(a[0]),
    # "it is assumed that its start is less or equal its end"
    "HumanEval/127": lambda a: all(start <= end for start, end in a),
    # "N rows and N columns (N >= 2) ... Every integer in the range [1, N * N] ... exactly once"
    "HumanEval/129": lambda a: a[1] >= 1
    and all(len(row) == len(a[0]) for row in a[0])
    and sorted(v for row in a[0] for v in row) == list(range(1, len(a[0]) ** 2 + 1)),
    # "The given array will not contain duplicate values."
    "HumanEval/135": lambda a: _distinct(a[0]),
    # "both numerator and denominator are positive whole numbers"
    "HumanEval/144": lambda a: all(int(part) > 0 for f in a for part in f.split("/")),
    # "The basic algebra operations: Addition ( + ) Subtraction ( - ) Multiplication ( * )
    # Floor division ( // ) Exponentiation ( ** )"; "length of operator list is equal to the
    # length of operand list minus one"
    "HumanEval/160": lambda a: set(a[0]) <= {"+", "-", "*", "//", "**"}
    and len(a[0]) == len(a[1]) - 1,
}


@dataclass(frozen=True)
class PlusCases:
    """The extra inputs of one problem.

    Attributes:
        compare: How a result is compared with the expected one (see
            :data:`spgg_env.grading.COMPARISONS`).
        count: Number of inputs.
        cases: :func:`spgg_env.grading.encode` text of ``[[args, expected], ...]``.
    """

    compare: str
    count: int
    cases: str


@lru_cache(maxsize=1)
def load_plus() -> dict[str, PlusCases]:
    """The shipped extra inputs, by task id (read once; checked against :data:`PLUS_SHA256`).

    Raises:
        ValueError: If the file is not the pinned one.
    """
    data = PLUS_FILE.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PLUS_SHA256:
        raise ValueError(
            f"{PLUS_FILE.name} has SHA-256 {digest}, expected {PLUS_SHA256}; regenerate it with "
            "`python -m spgg_env.tasks.humaneval_plus --seed 0` and update PLUS_SHA256"
        )
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines()[1:]]
    return {row["task_id"]: PlusCases(row["compare"], row["count"], row["cases"]) for row in rows}


# ---------------------------------------------------------------------------- mutation
def _char_class(char: str) -> str:
    if char.isspace():
        return "space"
    if char.isdigit():
        return "digit"
    if char.isalpha():
        return "upper" if char.isupper() else "lower"
    return "other"


@dataclass
class Domain:
    """What the original values at one argument position look like; bounds the mutations."""

    ints: set[int] = field(default_factory=set)
    floats: set[float] = field(default_factory=set)
    bools: set[bool] = field(default_factory=set)
    chars: dict[str, set[str]] = field(default_factory=dict)
    spaced: bool = False

    def observe(self, value: Any) -> None:
        """Add ``value`` (and everything inside it) to the domain."""
        if isinstance(value, bool):
            self.bools.add(value)
        elif isinstance(value, int):
            self.ints.add(value)
        elif isinstance(value, float):
            self.floats.add(value)
        elif isinstance(value, str):
            for char in value:
                self.chars.setdefault(_char_class(char), set()).add(char)
            self.spaced = self.spaced or " " in value.strip()
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.observe(item)
        elif isinstance(value, dict):
            for item in value.values():
                self.observe(item)


def mutate(value: Any, domain: Domain, rng: random.Random) -> Any:
    """A value of the same type and shape near ``value``, inside ``domain`` (module docstring)."""
    if value is None:
        return value
    if isinstance(value, bool):
        return (not value) if len(domain.bools) == 2 else value
    if isinstance(value, int):
        low, high = min(domain.ints), max(domain.ints)
        moves = (value + rng.choice((-2, -1, 1, 2)), rng.randint(low, high))
        return min(high, max(low, rng.choice(moves)))
    if isinstance(value, float):
        low, high = min(domain.floats), max(domain.floats)
        moves = (value + rng.uniform(-0.25, 0.25) * max(high - low, 1.0), rng.uniform(low, high))
        return round(min(high, max(low, rng.choice(moves))), 3)
    if isinstance(value, str):
        if any(char.isdigit() for char in value):  # keep formats ("5 apples and 6 oranges")
            return _replace_char(value, domain, rng, str.isdigit)
        if domain.spaced:  # keep vocabularies ("three one five")
            return _swap_words(value, rng)
        return _replace_char(value, domain, rng, lambda char: not char.isspace())
    if isinstance(value, (list, tuple)) and value:
        items = list(value)
        i, j = rng.randrange(len(items)), rng.randrange(len(items))
        if rng.random() < 0.7 or i == j:
            items[i] = mutate(items[i], domain, rng)
        else:
            items[i], items[j] = items[j], items[i]
        return type(value)(items)
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value, key=repr))
        return value | {key: mutate(value[key], domain, rng)}
    return value


def _swap_words(text: str, rng: random.Random) -> str:
    """Two words of ``text`` swapped (the whitespace between words stays where it was)."""
    parts = re.split(r"(\s+)", text)
    words = [i for i, part in enumerate(parts) if part and not part.isspace()]
    if len(words) < 2:
        return text
    i, j = rng.sample(words, 2)
    parts[i], parts[j] = parts[j], parts[i]
    return "".join(parts)


def _replace_char(
    text: str, domain: Domain, rng: random.Random, which: Callable[[str], bool]
) -> str:
    """One character for which ``which`` holds, replaced by another of its class seen here."""
    places = [i for i, char in enumerate(text) if which(char)]
    if not places:
        return text
    i = rng.choice(places)
    choices = sorted(domain.chars[_char_class(text[i])])
    return text[:i] + rng.choice(choices) + text[i + 1 :]


def mutants(originals: Sequence[list], count: int, rng: random.Random) -> list[list]:
    """Up to ``count`` distinct argument lists mutated from ``originals`` (none repeats one)."""
    domains = [Domain() for _ in originals[0]]
    for args in originals:
        for domain, value in zip(domains, args, strict=True):
            domain.observe(value)
    seen = {grading.encode(args) for args in originals}
    found: list[list] = []
    for _ in range(count * 20):
        if len(found) == count:
            break
        args = list(rng.choice(originals))
        for _ in range(1 + (rng.random() < 0.5)):
            position = rng.randrange(len(args))
            args[position] = mutate(args[position], domains[position], rng)
        key = grading.encode(args)
        if key not in seen:
            seen.add(key)
            found.append(args)
    return found


# -------------------------------------------------------------------------- generation
def generate(
    seed: int = 0,
    per_problem: int = 20,
    workers: int = 2,
    uids: Sequence[str] | None = None,
    stats: Counter | None = None,
) -> list[dict[str, Any]]:
    """Build the rows of the plus file (see the module docstring); deterministic for a seed.

    Args:
        seed: Seeds every problem's mutation generator (with the task id).
        per_problem: Most inputs kept per problem.
        workers: Parallel sandboxed runs.
        uids: Only these problems (default: all 164, as shipped).
        stats: Filled with how many mutants were made and why each dropped one was dropped.
    """
    from spgg_env.sandbox import Limits, Sandbox
    from spgg_env.tasks.humaneval import candidate_source, check_spec, load_problems

    problems = [p for p in load_problems() if uids is None or p.uid in uids]
    limits = Limits(timeout_s=30.0, call_timeout_s=CALL_TIMEOUT_S)
    with Sandbox(limits, workers=workers) as sandbox:
        sources = [candidate_source(p, p.metadata["canonical_solution"]) for p in problems]
        recorded = sandbox.check_many(
            [
                (src, check_spec(p) | {"mode": "record"})
                for p, src in zip(problems, sources, strict=True)
            ]
        )
        originals = []
        for problem, run in zip(problems, recorded, strict=True):
            if not run.passed:
                raise RuntimeError(f"{problem.uid}: canonical solution failed: {run.reason}")
            calls = [grading.decode(text.encode()) for text in run.verdict["recorded"]]
            if any(kwargs for _, kwargs in calls):
                raise RuntimeError(f"{problem.uid}: the tests pass keyword arguments")
            originals.append([args for args, _ in calls])
        stats = Counter() if stats is None else stats
        pools = []
        for problem, args_list in zip(problems, originals, strict=True):
            made = mutants(args_list, 3 * per_problem, random.Random(f"{seed}:{problem.uid}"))
            promise = CONTRACTS.get(problem.uid, lambda _: True)
            pools.append([args for args in made if promise(args)])
            stats["mutants made"] += len(made)
            stats["dropped: broke a docstring promise"] += len(made) - len(pools[-1])
        outputs = _run_canonical(sandbox, problems, sources, pools)
        rows = []
        for problem, pool, results in zip(problems, pools, outputs, strict=True):
            returned = [
                [args, result[1]]
                for args, result in zip(pool, results, strict=True)
                if result[0] == "returned"
            ]
            kept = returned[:per_problem]
            kinds = Counter(result[0] for result in results)
            stats["dropped: the canonical solution raised"] += kinds["raised"]
            stats["dropped: the canonical solution timed out"] += kinds["dropped"]
            stats["not needed (beyond per_problem)"] += len(returned) - len(kept)
            rows.append(
                {
                    "task_id": problem.uid,
                    "compare": COMPARE.get(problem.uid, "equal"),
                    "cases": kept,
                }
            )
        stats["dropped: failed the canonical check"] += _drop_failing(
            sandbox, problems, sources, rows
        )
    return [
        {
            "task_id": row["task_id"],
            "compare": row["compare"],
            "count": len(row["cases"]),
            "cases": grading.encode(row["cases"]).decode("utf-8", "surrogatepass"),
        }
        for row in rows
    ]


def _run_canonical(sandbox, problems, sources, pools) -> list[list[list]]:
    """Each mutant's ``["returned", value]`` / ``["raised", type]`` / ``["dropped", why]``."""
    results: list[list[list]] = [[] for _ in problems]
    pending = [i for i, pool in enumerate(pools) if pool]
    while pending:
        jobs = []
        for i in pending:
            rest = pools[i][len(results[i]) :]
            spec = {
                "entry_point": problems[i].metadata["entry_point"],
                "mode": "apply",
                "inputs": grading.encode(rest).decode("utf-8", "surrogatepass"),
            }
            jobs.append((sources[i], spec))
        for i, run in zip(pending, sandbox.check_many(jobs), strict=True):
            done = grading.decode(run.verdict["results"].encode()) if run.verdict else []
            results[i].extend(done)
            if len(results[i]) < len(pools[i]):  # it timed out or died on the next mutant
                results[i].append(["dropped", run.reason])
        pending = [i for i in pending if len(results[i]) < len(pools[i])]
    return results


def _drop_failing(sandbox, problems, sources, rows) -> int:
    """Drop, one at a time, any kept input on which the canonical solution fails the check."""
    from spgg_env.tasks.humaneval import check_spec

    dropped = 0
    pending = list(range(len(problems)))
    while pending:
        jobs = []
        for i in pending:
            text = grading.encode(rows[i]["cases"]).decode("utf-8", "surrogatepass")
            spec = check_spec(problems[i]) | {"plus": text, "compare": rows[i]["compare"]}
            jobs.append((sources[i], spec))
        failing = []
        for i, run in zip(pending, sandbox.check_many(jobs), strict=True):
            found = re.search(r"plus input (\d+) of", run.reason)
            if run.passed:
                continue
            if not found:
                raise RuntimeError(f"{problems[i].uid}: canonical solution failed: {run.reason}")
            del rows[i]["cases"][int(found.group(1)) - 1]
            dropped += 1
            failing.append(i)
        pending = failing
    return dropped


def write_plus(rows: list[dict[str, Any]], path: Path, seed: int, per_problem: int) -> str:
    """Write the plus file; return its SHA-256."""
    meta = {
        "meta": {
            "seed": seed,
            "per_problem": per_problem,
            "generator_version": GENERATOR_VERSION,
            "problems": len(rows),
            "inputs": sum(row["count"] for row in rows),
        }
    }
    lines = [json.dumps(meta, sort_keys=True)]
    lines += [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main(argv: Sequence[str] | None = None) -> None:
    """Regenerate the plus file and print its SHA-256 (to paste into :data:`PLUS_SHA256`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-problem", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=PLUS_FILE)
    args = parser.parse_args(argv)
    stats: Counter = Counter()
    rows = generate(args.seed, args.per_problem, args.workers, stats=stats)
    digest = write_plus(rows, args.out, args.seed, args.per_problem)
    counts = [row["count"] for row in rows]
    print(
        f"wrote {args.out}: {len(rows)} problems, {sum(counts)} inputs "
        f"(min {min(counts)}, max {max(counts)} per problem); "
        f"{sum(c == 0 for c in counts)} problems without extra inputs"
    )
    for what, count in stats.items():
        print(f"  {what}: {count}")
    print(f"SHA-256 {digest}")


if __name__ == "__main__":
    main()
