"""How much a very small model gets right under each prompt style of the env.

Greedy play of ``--problems`` held-out ``arith`` problems (one step by default) by an untrained
model, exactly as the PPO learner evaluates before training (``PPOLearner.evaluate``: the
episode engine, chat template, no system prompt), once per prompt style. Prints, per style,
each agent's mean task score, the group's score, mean tokens per contribution and the mean
reward::

    python examples/prompt_styles.py                      # the embedded SmolLM2-135M
    python examples/prompt_styles.py --max-steps 2 --max-new-tokens 48
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from spgg_env.agents.ppo import PPOConfig, PPOLearner
from spgg_env.prompts import PROMPT_STYLES
from spgg_env.spec import GameSpec


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per prompt style: agent scores, group score, tokens and reward of greedy play."""
    torch.set_num_threads(args.threads)
    results = {}
    for style in PROMPT_STYLES:
        game = GameSpec(task="arith", split="train", prompt_style=style,
                        task_options={"difficulty": "easy", "max_steps": args.max_steps},
                        max_tokens=args.max_new_tokens, token_counting="model")
        cfg = PPOConfig(model=args.model, game=game, max_new_tokens=args.max_new_tokens,
                        eval_size=args.problems, dtype="float32")
        metrics, episodes = PPOLearner(cfg).evaluate()  # fresh LoRA adapters change nothing
        results[style] = {
            **{f"{agent}_score": metrics[f"eval/{agent}/score"]
               for agent in (s.agent for s in episodes[0].steps)},
            "group_score": metrics["eval/task_score"],
            "tokens": float(np.mean([s.info["tokens"] for e in episodes for s in e.steps])),
            "reward": metrics["eval/reward"],
        }
    return results


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="transformers folder or 'embedded'")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=1, help="arith steps per problem (1-2)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    results = measure(args)
    for style, row in results.items():
        print(f"{style:8s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
