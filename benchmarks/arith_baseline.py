"""How the embedded SmolLM2-135M plays the text game on ``arith``: is the task learnable?

For each difficulty, ``--n`` test problems are played as full episodes of the AEC env
(3 agents, partial observation, MAC-SPGG), every seat played by the same model with greedy
decoding; the episodes run side by side so each position is one batched ``generate`` call.
Printed per difficulty: accuracy of each position's contribution, the group score (the last
agent's answer), the mean reward, and generation throughput.

Run::

    python benchmarks/arith_baseline.py --n 24 --device cuda   # or --device cpu (slow)

On a CPU this is slow: 2 x 3 batched generate calls of up to ``--max-new-tokens`` tokens.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import spgg_env
from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.transformers_backend import TransformersBackend


def play_batch(backend, difficulty: str, n: int, max_new_tokens: int) -> dict[str, float]:
    """Play ``n`` episodes side by side; return accuracies, group score, reward and speed."""
    envs = [
        spgg_env.aec_env(
            task="arith",
            task_options={"n_problems": n, "difficulty": difficulty},
            token_counter=backend.count_tokens,
        )
        for _ in range(n)
    ]
    for i, env in enumerate(envs):
        env.reset(seed=i, options={"problem_index": i})
    params = GenerationParams(temperature=0.0, max_new_tokens=max_new_tokens)
    tokens, start = 0, time.perf_counter()
    for agent in envs[0].possible_agents:
        prompts = [[{"role": "user", "content": env.observe(agent)["prompt"]}] for env in envs]
        generations = backend.generate(prompts, params, seed=0)
        tokens += sum(g.completion_tokens for g in generations)
        for env, generation in zip(envs, generations, strict=True):
            env.step(generation.text)
    seconds = time.perf_counter() - start
    infos = [[env.infos[a] for a in env.possible_agents] for env in envs]
    result = {f"acc_agent_{i}": np.mean([row[i]["score"] for row in infos]) for i in range(3)}
    result["group_score"] = np.mean([row[-1]["group_score"] for row in infos])
    result["mean_reward"] = np.mean([env.rewards[a] for env in envs for a in env.possible_agents])
    result["tokens_per_s"] = tokens / seconds
    return result


def main() -> None:
    """Print one row per difficulty."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="episodes per difficulty")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    args = parser.parse_args()
    backend = TransformersBackend(args.model, device=args.device)
    print(f"model {backend.describe()['model']}, {args.n} episodes per difficulty, greedy")
    print(f"{'difficulty':<11}{'agent_0':>8}{'agent_1':>8}{'agent_2':>8}{'group':>8}"
          f"{'reward':>8}{'tok/s':>8}")  # fmt: skip
    for difficulty in ("easy", "normal"):
        r = play_batch(backend, difficulty, args.n, args.max_new_tokens)
        print(
            f"{difficulty:<11}{r['acc_agent_0']:>8.2f}{r['acc_agent_1']:>8.2f}"
            f"{r['acc_agent_2']:>8.2f}{r['group_score']:>8.2f}{r['mean_reward']:>8.2f}"
            f"{r['tokens_per_s']:>8.0f}"
        )


if __name__ == "__main__":
    main()
