"""How much a very small model gets right under each prompt style of the env.

Greedy play of ``--problems`` held-out ``arith`` problems (one step by default) by an untrained
model, exactly as the PPO learner starts (``spgg_env.agents.ppo.play``: chat template, no system
prompt), once per prompt style. Prints, per style, each agent's mean task score under the
task's strict answer format (the env's reward) and, for the same texts, under the lenient
baseline reading, the group's score, mean tokens per contribution and the mean reward::

    python examples/prompt_styles.py --threads 1          # the embedded SmolLM2-135M
    python examples/prompt_styles.py --max-steps 2 --max-new-tokens 48
    python examples/prompt_styles.py --agents 1 --styles compact --format-line ""

``--format-line`` replaces the task's answer-format line (the last line of its instruction,
the only instruction the compact style shows); ``""`` removes it, which renders the compact
prompt as it was before it showed one.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from spgg_env.agents.ppo import PPOConfig, load_policies, make_envs, play
from spgg_env.prompts import PROMPT_STYLES
from spgg_env.tasks.arith import ArithTask


def arith_task(args: argparse.Namespace, answer_format: str = "strict") -> ArithTask:
    """The measured task; ``--format-line`` replaces its instruction's last line."""
    task = ArithTask(difficulty="easy", max_steps=args.max_steps, answer_format=answer_format)
    if args.format_line is not None:
        head = task.instruction.splitlines()[0]
        task.instruction = f"{head}\n{args.format_line}" if args.format_line else head
    return task


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per prompt style: agent scores, group score, tokens and reward of greedy play."""
    torch.set_num_threads(args.threads)
    task, lenient = arith_task(args), arith_task(args, "lenient")
    # a ready task: make_envs passes it through make_task, which shares it between the envs
    base = PPOConfig(model=args.model, task=task, max_new_tokens=args.max_new_tokens,
                     n_agents=args.agents, bf16=False)
    tokenizer, model, _ = load_policies(base)  # fresh LoRA adapters change nothing yet
    results = {}
    for style in args.styles:
        cfg = PPOConfig(**{**base.__dict__, "prompt_style": style})
        envs = make_envs(cfg, "test", args.problems, tokenizer)
        indices = list(range(args.problems))
        _, infos = play(model, tokenizer, envs, indices, cfg, greedy=True, seeds=indices)
        problems = [env.unwrapped.problem for env in envs]
        row = {}
        for i, agent in enumerate(infos):
            row[f"agent_{i}_score"] = float(np.mean([x["score"] for x in agent]))
            lenient_scores = [lenient.score(p, x["contribution"]).value
                              for p, x in zip(problems, agent, strict=True)]
            row[f"agent_{i}_lenient"] = float(np.mean(lenient_scores))
        results[style] = {
            **row,
            "group_score": float(np.mean([x["group_score"] for x in infos[-1]])),
            "tokens": float(np.mean([x["tokens"] for a in infos for x in a])),
            "reward": float(np.mean([x["reward_components"]["total"] for a in infos for x in a])),
        }
    return results


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="transformers folder (default: embedded)")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=1, help="arith steps per problem (1-2)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--agents", type=int, default=3, help="agents per episode")
    parser.add_argument("--styles", nargs="+", default=list(PROMPT_STYLES), choices=PROMPT_STYLES)
    parser.add_argument("--format-line", default=None,
                        help="replace the task's answer-format line ('' removes it)")
    args = parser.parse_args(argv)
    results = measure(args)
    for style, row in results.items():
        print(f"{style:8s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
