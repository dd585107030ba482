"""How much a very small model gets right under each prompt style of the env.

Greedy play of ``--problems`` held-out ``arith`` problems (one step by default) by an untrained
model, exactly as the PPO learner evaluates before training (``PPOLearner.evaluate``: the
episode engine, chat template, no system prompt), once per prompt style. Prints, per style,
each agent's mean task score under the task's strict answer format (the env's reward) and, for
the same texts, under the lenient baseline reading, the group's score, mean tokens per
contribution and the mean reward::

    python examples/prompt_styles.py --threads 1          # the embedded SmolLM2-135M
    python examples/prompt_styles.py --max-steps 2 --max-new-tokens 48
    python examples/prompt_styles.py --agents 1 --styles compact --format-line ""

``--format-line`` replaces the task's answer-format line (the last line of its instruction,
the only instruction the compact style shows); ``""`` removes it, which renders the compact
prompt as it was before it showed one.
"""

from __future__ import annotations

import argparse
import contextlib
import json

import numpy as np
import torch

from spgg_env.agents.ppo import PPOConfig, PPOLearner
from spgg_env.prompts import PROMPT_STYLES
from spgg_env.spec import GameSpec
from spgg_env.tasks.arith import ArithTask


@contextlib.contextmanager
def format_line(line: str | None):
    """While open, ``--format-line`` replaces the last line of arith's instruction (``None``:
    the task as shipped; ``""``: no format line)."""
    shipped = ArithTask.instruction
    if line is not None:
        head = shipped.splitlines()[0]
        ArithTask.instruction = f"{head}\n{line}" if line else head
    try:
        yield
    finally:
        ArithTask.instruction = shipped


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per prompt style: agent scores, group score, tokens and reward of greedy play."""
    torch.set_num_threads(args.threads)
    results = {}
    for style in args.styles:
        game = GameSpec(task="arith", split="train", prompt_style=style, n_agents=args.agents,
                        task_options={"difficulty": "easy", "max_steps": args.max_steps},
                        max_tokens=args.max_new_tokens, token_counting="model")
        cfg = PPOConfig(model=args.model, game=game, max_new_tokens=args.max_new_tokens,
                        eval_size=args.problems, dtype="float32")
        with format_line(args.format_line):
            metrics, episodes = PPOLearner(cfg).evaluate()  # fresh LoRA: nothing learnt yet
        lenient = game.replace(split=cfg.eval_split,
                               task_options={**game.task_options, "answer_format": "lenient"})
        lenient_task = lenient.make_task()
        problems = lenient_task.problems(cfg.eval_split)
        agents = [s.agent for s in episodes[0].steps]
        results[style] = {
            **{f"{agent}_score": metrics[f"eval/{agent}/score"] for agent in agents},
            **{f"{agent}_lenient": float(np.mean([
                lenient_task.score(problems[e.index], e.steps[i].action).value
                for e in episodes])) for i, agent in enumerate(agents)},
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
