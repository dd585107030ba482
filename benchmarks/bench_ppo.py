"""Seconds per PPO update and peak memory of the PPO LLM learner (agents/ppo.py).

Default model (the embedded SmolLM2-135M-Instruct), 3 agents on easy ``arith``, batch 8
(8 episodes per update = 8 completions per agent), after ``--warmup`` untimed updates::

    python benchmarks/bench_ppo.py --updates 2 --max-new-tokens 48
    python benchmarks/bench_ppo.py --no-bf16        # fp32 base, for comparison

Prints one JSON line: rollout and update seconds per PPO update (median over the timed
updates), tokens generated, and the process's peak RSS in GiB (``ru_maxrss``, so run one
setting per process). Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time

import torch


def main() -> None:
    from spgg_env.agents.ppo import PPOConfig, PPOTrainer, play, ppo_update

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="transformers folder (default: embedded)")
    parser.add_argument("--episodes", type=int, default=8, help="batch: episodes per update")
    parser.add_argument("--updates", type=int, default=2, help="timed updates")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--no-bf16", action="store_true", help="fp32 base instead of bf16")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    cfg = PPOConfig(
        model=args.model,
        task_options={"difficulty": "easy"},
        episodes=args.episodes,
        minibatch=min(4, args.episodes),
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        bf16=not args.no_bf16,
        threads=args.threads,
        out_dir=tempfile.mkdtemp(prefix="bench_ppo_"),
    )
    trainer = PPOTrainer(cfg)
    rollout_s, update_s, tokens = [], [], []
    for step in range(args.warmup + args.updates):
        indices = trainer.rng.integers(trainer.n_train, size=cfg.episodes)
        seeds = [int(trainer.rng.integers(2**31)) + e for e in range(cfg.episodes)]
        start = time.perf_counter()
        rollouts, _ = play(
            trainer.model, trainer.tokenizer, trainer.train_envs, indices, cfg,
            greedy=False, seeds=seeds,
        )
        middle = time.perf_counter()
        ppo_update(trainer.model, trainer.heads, trainer.optimizer, rollouts, cfg, trainer.rng)
        end = time.perf_counter()
        if step >= args.warmup:  # warm-up updates load kernels and caches
            rollout_s.append(middle - start)
            update_s.append(end - middle)
            tokens.append(sum(int(r.mask.sum()) for r in rollouts))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "model": cfg.model or "embedded SmolLM2-135M-Instruct",
        "base_dtype": "bf16" if cfg.bf16 else "fp32",
        "batch_episodes": cfg.episodes,
        "n_agents": cfg.n_agents,
        "max_new_tokens": cfg.max_new_tokens,
        "epochs": cfg.epochs,
        "minibatch": cfg.minibatch,
        "rollout_s": round(statistics.median(rollout_s), 2),
        "update_s": round(statistics.median(update_s), 2),
        "total_s_per_ppo_update": round(statistics.median(
            [a + b for a, b in zip(rollout_s, update_s, strict=True)]), 2),
        "completion_tokens_per_update": statistics.median(tokens),
        "peak_rss_gib": round(peak_kib / 2**20, 2),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "machine": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
