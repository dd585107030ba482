"""Batched rollouts (K episodes in lockstep) versus a plain sequential PettingZoo loop.

Both play the same episodes (same problems, same seeds) with the same ensemble and the same
model instance; the sequential loop is the textbook ``agent_iter`` loop, one generation per
step. Reports episodes per minute, completion tokens per second and the speed-up, plus (first)
our decoding loop against ``model.generate`` on one batch, the measurement behind the choice of
a custom loop. Run on a quiet machine::

    python benchmarks/bench_rollout.py --episodes 16 --batch-size 8 --out bench_rollout.json

Defaults: the default ensemble (three SmolLM2-135M-Instruct agents, sampling as configured),
task ``arith``, partial observation. ``--greedy`` decodes greedily (then both runners produce
the same texts, up to floating-point effects of padding).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace

import torch

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.ensemble import Ensemble, build_ensemble
from spgg_env.agents.rollout import RolloutRunner
from spgg_env.env import aec_env


def sequential(ensemble: Ensemble, episodes: int, seed: int, **env_kwargs) -> dict:
    """The plain loop: one env, one episode at a time, one generation per step."""
    backend = ensemble.agents[0].backend
    env = aec_env(n_agents=len(ensemble), token_counter=backend.count_tokens, **env_kwargs)
    completion, scores = 0, []
    start = time.perf_counter()
    for e in range(episodes):
        env.reset(seed=seed + e, options={"problem_index": e})
        for name in env.agent_iter():
            obs, _, terminated, truncated, info = env.last()
            if terminated or truncated:
                if name == "agent_0":
                    scores.append(info["group_score"])
                env.step(None)
                continue
            agent = ensemble.agents[int(name.rsplit("_", 1)[1])]
            generation = agent.act_batch([obs], seed=seed + e)[0]
            completion += generation.completion_tokens
            env.step(generation.text)
    return _rates(time.perf_counter() - start, episodes, completion, scores)


def batched(ensemble: Ensemble, episodes: int, seed: int, k: int, **env_kwargs) -> dict:
    """The lockstep runner with K environment copies."""
    runner = RolloutRunner(ensemble, batch_size=k, **env_kwargs)
    start = time.perf_counter()
    records = list(runner.run(episodes, seed=seed))
    completion = sum(r["tokens"]["completion"] for r in records)
    return _rates(time.perf_counter() - start, episodes, completion,
                  [r["group_score"] for r in records])


def decoding(backend, k: int, max_new_tokens: int) -> dict:
    """Our KV-cache loop versus ``model.generate`` on one greedy batch of K prompts."""
    prompts = [[{"role": "user", "content": f"Count from {i} to {i + 40}, one number a line."}]
               for i in range(k)]
    params = GenerationParams(max_new_tokens=max_new_tokens)
    start = time.perf_counter()
    ours = backend.generate(prompts, params)
    ours_s = time.perf_counter() - start
    tok = backend.tokenizer
    batch = tok([backend.render(p) for p in prompts], add_special_tokens=False,
                padding=True, return_tensors="pt").to(backend.device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = backend.model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=tok.pad_token_id)
    hf_s = time.perf_counter() - start
    new = out[:, batch["input_ids"].shape[1]:]
    hf_tokens = int(sum((row != tok.pad_token_id).sum() for row in new))
    ours_tokens = sum(g.completion_tokens for g in ours)
    return {"batch": k, "ours_tokens_per_s": ours_tokens / ours_s,
            "generate_tokens_per_s": hf_tokens / hf_s, "ours_tokens": ours_tokens,
            "generate_tokens": hf_tokens}


def _rates(seconds: float, episodes: int, completion: int, scores: list) -> dict:
    return {"seconds": seconds, "episodes": episodes, "episodes_per_min": 60 * episodes / seconds,
            "completion_tokens": completion, "tokens_per_s": completion / seconds,
            "group_score_mean": sum(scores) / len(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="arith")
    parser.add_argument("--observation", default="partial")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=None, help="ensemble config (default: built-in)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--greedy", action="store_true")
    parser.add_argument("--skip-decoding", action="store_true")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ensemble = build_ensemble(args.config, model=args.model, dtype=args.dtype,
                              max_new_tokens=args.max_new_tokens)
    if args.greedy:
        for agent in ensemble.agents:
            agent.params = replace(agent.params, temperature=0.0)
    env_kwargs = {"task": args.task, "observation": args.observation,
                  "max_tokens": max(a.params.max_new_tokens for a in ensemble.agents)}
    backend = ensemble.agents[0].backend
    backend.generate([[{"role": "user", "content": "warm up"}]], GenerationParams(max_new_tokens=4))
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "load_avg_start": os.getloadavg()},
        "backend": backend.describe(),
        "arguments": vars(args),
    }
    if not args.skip_decoding and hasattr(backend, "model"):
        result["decoding"] = decoding(backend, args.batch_size,
                                      max(a.params.max_new_tokens for a in ensemble.agents))
        print("decoding", json.dumps(result["decoding"]))
    result["batched"] = batched(ensemble, args.episodes, args.seed, args.batch_size, **env_kwargs)
    print("batched", json.dumps(result["batched"]))
    result["sequential"] = sequential(ensemble, args.episodes, args.seed, **env_kwargs)
    print("sequential", json.dumps(result["sequential"]))
    result["speedup_episodes_per_min"] = (result["batched"]["episodes_per_min"]
                                          / result["sequential"]["episodes_per_min"])
    result["speedup_tokens_per_s"] = (result["batched"]["tokens_per_s"]
                                      / result["sequential"]["tokens_per_s"])
    result["machine"]["load_avg_end"] = os.getloadavg()
    print(f"speed-up (K={args.batch_size}): {result['speedup_episodes_per_min']:.2f}x "
          f"episodes/min, {result['speedup_tokens_per_s']:.2f}x tokens/s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
