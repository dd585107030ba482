"""Write the first leaderboard's submissions: ``python benchmarks/make_configs.py``.

One YAML per (task, method) in ``benchmarks/configs/``: every comparison method on the pinned
``tiny-v1`` split with the embedded SmolLM2-135M-Instruct (bf16, greedy). The MAC-SPGG rows
embed their game spec (``game:``); the trained variants (MAC-SPGG with a trained
generation-parameter policy, ECON-learned) name the policy
``leaderboard/policies/<task>/<setting>/policy.pt`` that ``leaderboard/policies/train.sh``
trains (setting ``spgg-po``, ``spgg-fo`` or ``econ``). A MAC-SPGG row plays the game its
policy was trained in, untrained rows too (so a trained row and its untrained twin differ only
in the policy): 3 agents, MAC-SPGG's default parameters, effort counted in the model's own
tokens with :data:`MAX_TOKENS` tokens at effort 1. Paths are relative to the repository root,
where ``spgg bench run`` is run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from spgg_env.baselines.bench_config import CONFIG_SCHEMA
from spgg_env.spec import GameSpec

OUT = Path(__file__).resolve().parent / "configs"
TASKS = {"mmlu": 64, "gsm8k": 64, "humaneval": 96}  # task -> max_new_tokens
#: task -> the effort budget its policies were trained with (leaderboard/policies/train.sh).
MAX_TOKENS = {"mmlu": 128, "gsm8k": 128, "humaneval": 192}
POLICIES = "leaderboard/policies"
OBSERVATIONS = {"spgg-po": "partial", "spgg-fo": "full"}

METHODS: dict[str, tuple[str, dict]] = {
    "zero-shot": ("single_agent", {}),
    "few-shot": ("single_agent", {"shots": 2}),
    "cot": ("cot", {}),
    "self-consistency": ("self_consistency", {"samples": 3, "temperature": 0.7}),
    "debate": ("debate", {"agents": 2, "rounds": 2, "temperature": 0.7}),
    "econ-static": ("econ", {"executors": 2}),
    "spgg-po": ("spgg", {}),
    "spgg-fo": ("spgg", {}),
}
#: label -> (method, options, the policy's setting folder)
TRAINED: dict[str, tuple[str, dict, str]] = {
    "econ-learned": ("econ", {"executors": 2}, "econ"),
    "spgg-po-trained": ("spgg", {}, "spgg-po"),
    "spgg-fo-trained": ("spgg", {}, "spgg-fo"),
}


def game(task: str, setting: str) -> dict:
    """The game of a MAC-SPGG row (``setting``: ``spgg-po`` or ``spgg-fo``)."""
    return GameSpec(task=task, split="test", n_agents=3, observation=OBSERVATIONS[setting],
                    mechanism="mac-spgg", max_tokens=MAX_TOKENS[task],
                    token_counting="model").to_dict()


def submission(task: str, label: str, method: str, options: dict) -> dict:
    """One submission as a plain dict."""
    setting = label.removesuffix("-trained")
    where = {"game": game(task, setting)} if method == "spgg" else {"task": task}
    return {
        "schema": CONFIG_SCHEMA,
        "name": f"{task}-{label}",
        "method": method,
        "method_options": options,
        **where,
        "split": "tiny-v1",
        "backend": {"kind": "transformers", "model": "embedded", "dtype": "bfloat16"},
        "decoding": {"temperature": 0.0, "max_new_tokens": TASKS[task]},
        "seeds": [0],
        "batch_size": 16,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        for label, (method, options) in METHODS.items():
            write(submission(task, label, method, options))
        for label, (method, options, setting) in TRAINED.items():
            checkpoint = f"{POLICIES}/{task}/{setting}/policy.pt"
            write(submission(task, label, method, {**options, "policy_checkpoint": checkpoint}))


def write(config: dict) -> None:
    path = OUT / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    main()
