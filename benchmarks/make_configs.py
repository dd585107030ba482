"""Write the first leaderboard's submissions: ``python benchmarks/make_configs.py``.

One YAML per (task, method) in ``benchmarks/configs/``: every comparison method on the pinned
``tiny-v1`` split with the embedded SmolLM2-135M-Instruct (bf16, greedy). The "trained"
variants (MAC-SPGG with a trained generation-parameter policy, ECON-learned) name the policy
``leaderboard/policies/<task>/<setting>/policy.pt`` that ``leaderboard/policies/train.sh``
trains (setting ``spgg-po``, ``spgg-fo`` or ``econ``); paths are relative to the repository
root, where ``spgg bench run`` is run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent / "configs"
TASKS = {"mmlu": 64, "gsm8k": 64, "humaneval": 96}  # task -> max_new_tokens
POLICIES = "leaderboard/policies"

METHODS: dict[str, tuple[str, dict]] = {
    "zero-shot": ("single_agent", {}),
    "few-shot": ("single_agent", {"shots": 2}),
    "cot": ("cot", {}),
    "self-consistency": ("self_consistency", {"samples": 3, "temperature": 0.7}),
    "debate": ("debate", {"agents": 2, "rounds": 2, "temperature": 0.7}),
    "econ-static": ("econ", {"executors": 2}),
    "spgg-po": ("spgg", {"agents": 3, "observation": "partial"}),
    "spgg-fo": ("spgg", {"agents": 3, "observation": "full"}),
}
#: label -> (method, options, the policy's setting folder)
TRAINED: dict[str, tuple[str, dict, str]] = {
    "econ-learned": ("econ", {"executors": 2}, "econ"),
    "spgg-po-trained": ("spgg", {"agents": 3, "observation": "partial"}, "spgg-po"),
    "spgg-fo-trained": ("spgg", {"agents": 3, "observation": "full"}, "spgg-fo"),
}


def submission(task: str, label: str, method: str, options: dict, max_new_tokens: int) -> dict:
    """One submission as a plain dict."""
    return {
        "schema": "spgg-bench-config/1",
        "name": f"{task}-{label}",
        "method": method,
        "method_options": options,
        "task": task,
        "split": "tiny-v1",
        "backend": {"kind": "transformers", "model": "embedded", "dtype": "bfloat16"},
        "decoding": {"temperature": 0.0, "max_new_tokens": max_new_tokens},
        "seeds": [0],
        "batch_size": 16,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for task, tokens in TASKS.items():
        for label, (method, options) in METHODS.items():
            write(submission(task, label, method, options, tokens))
        for label, (method, options, setting) in TRAINED.items():
            checkpoint = f"{POLICIES}/{task}/{setting}/policy.pt"
            write(submission(task, label, method, {**options, "policy_checkpoint": checkpoint},
                             tokens))  # fmt: skip


def write(config: dict) -> None:
    path = OUT / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    main()
