"""Write the benchmark submissions: ``python benchmarks/make_configs.py [--board BOARD]``.

One YAML per submission, with the embedded SmolLM2-135M-Instruct and its decoding
written out in full. Paths are relative to the repository root, where ``spgg bench run`` is run.

``tiny-v1`` (``benchmarks/configs/*.yaml``, the first board): every comparison method on MMLU,
GSM8K and HumanEval, 5 problems each, greedy, one seed, plus the trained variants (MAC-SPGG
with a trained generation-parameter policy, ECON-learned) that name the policy
``leaderboard/policies/<task>/<setting>/policy.pt`` trained by ``leaderboard/policies/train.sh``.

``board-v1`` (``benchmarks/configs/board-v1/*.yaml``, the task board of issue 15): every
untrained comparison method on the five tasks of the pinned ``board-v1`` split (easy ``arith``,
MMLU, GSM8K, HumanEval, SummEval). A method whose result depends on a seed (it samples at a
temperature > 0, or draws its few-shot exemplars) gets three submissions, one per seed
(``<task>-<method>-seed<N>``), so that a run killed midway loses at most one seed and the
board can be built over several sittings; the leaderboard merges them back into one row. A
greedy, seed-free method gets one submission (seed 0). The trained policies are left out of
this board: they were trained on the MMLU and HumanEval test problems outside ``tiny-v1`` and
``small-v1``, which ``board-v1`` evaluates, and none was trained for ``arith`` or SummEval.

A MAC-SPGG row plays 3 agents under MAC-SPGG's default parameters, effort counted in the model's
own tokens with :data:`MAX_TOKENS` tokens at effort 1 (``spgg-po``: partial, ``spgg-fo``: full
observation). SummEval needs its data: run its configs with
``--task-option data_path=../shared/data/summeval/test.jsonl``; GSM8K reads ``SPGG_GSM8K_PATH``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from spgg_env.baselines.bench_config import CONFIG_SCHEMA
from spgg_env.spec import GameSpec

OUT = Path(__file__).resolve().parent / "configs"
#: board -> task -> max_new_tokens of every call. arith: the 135M model reasons step by step
#: before its answer line; 48 tokens cut all 150 zero-shot replies short. board-v1's GSM8K and
#: HumanEval budgets were 64 and 96 at first, which cut all 150 GSM8K and 134 of 164 HumanEval
#: zero-shot replies short (the model restates the function's docstring before its body); 192
#: tokens hold 95% of GSM8K's worked training solutions (median 92, SmolLM2's tokenizer).
MAX_NEW_TOKENS = {
    "tiny-v1": {"mmlu": 64, "gsm8k": 64, "humaneval": 96},
    "board-v1": {"mmlu": 64, "gsm8k": 192, "humaneval": 256, "arith": 128, "summeval": 96},
}
#: task -> the effort budget (tokens at effort 1) of a MAC-SPGG row; the tiny-v1 policies were
#: trained with these (leaderboard/policies/train.sh).
MAX_TOKENS = {"mmlu": 128, "gsm8k": 128, "humaneval": 192, "arith": 128, "summeval": 192}
#: board -> task -> the task options of its problems (the pinned split was drawn with them).
TASK_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny-v1": {"mmlu": {}, "gsm8k": {}, "humaneval": {}},
    "board-v1": {"arith": {"difficulty": "easy"}, "mmlu": {}, "gsm8k": {}, "humaneval": {},
                 "summeval": {}},
}
#: board -> the model's dtype: float32 for board-v1, since this CPU (AVX2, no native bf16)
#: emulates bfloat16 (decoding 1.9x and prefill 4.8x slower, docs/agents.md); a GPU run of the
#: same configs computes in float32 too, so its scores are comparable.
DTYPE = {"tiny-v1": "bfloat16", "board-v1": "float32"}
POLICIES = "leaderboard/policies"
#: A MAC-SPGG label's first seven characters name its observation.
OBSERVATIONS = {"spgg-po": "partial", "spgg-fo": "full"}
#: Tasks with no exemplar pool on board-v1: it evaluates every problem they have (HumanEval's
#: 164, SummEval's 100) and neither has a training split, so few-shot rows cannot run.
NO_EXEMPLARS = frozenset({"humaneval", "summeval"})
#: Decoding of every call that a method does not sample itself: greedy.
GREEDY = {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0,
          "presence_penalty": 0.0}
#: The three run seeds of a method whose result depends on its seed.
BOARD_SEEDS = (0, 1, 2)

#: label -> (method, options, depends on the seed: samples or draws exemplars)
METHODS: dict[str, tuple[str, dict, bool]] = {
    "zero-shot": ("single_agent", {}, False),
    "few-shot": ("single_agent", {"shots": 2}, True),
    "cot": ("cot", {}, False),
    "self-consistency": ("self_consistency", {"samples": 3, "temperature": 0.7}, True),
    "debate": ("debate", {"agents": 2, "rounds": 2, "temperature": 0.7}, True),
    "econ-static": ("econ", {"executors": 2}, False),
    "spgg-po": ("spgg", {}, False),
    "spgg-fo": ("spgg", {}, False),
    "spgg-po-few-shot": ("spgg", {"shots": 2}, True),
    "spgg-fo-few-shot": ("spgg", {"shots": 2}, True),
}
#: The methods of the first board (the MAC-SPGG few-shot rows came with board-v1).
TINY_LABELS = ("zero-shot", "few-shot", "cot", "self-consistency", "debate", "econ-static",
               "spgg-po", "spgg-fo")
#: label -> (method, options, the policy's setting folder)
TRAINED: dict[str, tuple[str, dict, str]] = {
    "econ-learned": ("econ", {"executors": 2}, "econ"),
    "spgg-po-trained": ("spgg", {}, "spgg-po"),
    "spgg-fo-trained": ("spgg", {}, "spgg-fo"),
}


def game(task: str, setting: str, task_options: dict[str, Any]) -> dict:
    """The game of a MAC-SPGG row (``setting``: a label starting ``spgg-po`` or ``spgg-fo``)."""
    return GameSpec(task=task, task_options=task_options, split="test", n_agents=3,
                    observation=OBSERVATIONS[setting[:7]], mechanism="mac-spgg",
                    max_tokens=MAX_TOKENS[task], token_counting="model").to_dict()


def submission(task: str, label: str, method: str, options: dict, *, board: str = "tiny-v1",
               seeds: tuple[int, ...] = (0,), name: str | None = None) -> dict:
    """One submission as a plain dict (``name`` defaults to ``<task>-<label>``)."""
    task_options = TASK_OPTIONS[board][task]
    setting = label.removesuffix("-trained")
    if method == "spgg":
        where: dict[str, Any] = {"game": game(task, setting, task_options)}
    else:
        where = {"task": task, **({"task_options": task_options} if task_options else {})}
    greedy = GREEDY if board != "tiny-v1" else {"temperature": 0.0}
    return {
        "schema": CONFIG_SCHEMA,
        "name": name or f"{task}-{label}",
        "method": method,
        "method_options": options,
        **where,
        "split": board,
        "backend": {"kind": "transformers", "model": "embedded", "dtype": DTYPE[board]},
        "decoding": {**greedy, "max_new_tokens": MAX_NEW_TOKENS[board][task]},
        "seeds": list(seeds),
        "batch_size": 16,
    }


def board_submissions(board: str = "board-v1") -> list[dict]:
    """Every submission of the task board: one per (task, method, seed) for a seeded method,
    one per (task, method) otherwise; no few-shot method on a task in :data:`NO_EXEMPLARS`."""
    out = []
    for task in TASK_OPTIONS[board]:
        for label, (method, options, seeded) in METHODS.items():
            if options.get("shots") and task in NO_EXEMPLARS:
                continue
            if not seeded:
                out.append(submission(task, label, method, options, board=board))
                continue
            out += [submission(task, label, method, options, board=board, seeds=(seed,),
                               name=f"{task}-{label}-seed{seed}") for seed in BOARD_SEEDS]
    return out


def tiny_submissions() -> list[dict]:
    """The first board's submissions (``tiny-v1``), trained variants included."""
    out = []
    for task in TASK_OPTIONS["tiny-v1"]:
        for label in TINY_LABELS:
            method, options, _ = METHODS[label]
            out.append(submission(task, label, method, options))
        for label, (method, options, setting) in TRAINED.items():
            checkpoint = f"{POLICIES}/{task}/{setting}/policy.pt"
            out.append(submission(task, label, method,
                                  {**options, "policy_checkpoint": checkpoint}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", choices=list(TASK_OPTIONS), default="board-v1",
                        help="which board's submissions to write (default: board-v1)")
    args = parser.parse_args()
    if args.board == "tiny-v1":
        write(OUT, tiny_submissions())
    else:
        write(OUT / args.board, board_submissions(args.board))


def write(folder: Path, configs: list[dict]) -> None:
    """One ``<name>.yaml`` per submission in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for config in configs:
        path = folder / f"{config['name']}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    print(f"{len(configs)} submissions in {folder}")


if __name__ == "__main__":
    main()
