"""Seconds per PPO update and peak memory of the PPO LLM learner (agents/ppo.py).

Default model (the embedded SmolLM2-135M-Instruct), 3 agents on easy ``arith``, batch 8
(8 episodes per update = 8 completions per agent), after ``--warmup`` untimed updates::

    python benchmarks/bench_ppo.py --updates 2 --max-new-tokens 48
    python benchmarks/bench_ppo.py --no-bf16        # fp32 base, for comparison
    python benchmarks/bench_ppo.py --device cuda --model DIR --random-weights

Prints one JSON line: rollout and update seconds per PPO update (median over the timed
updates), tokens generated, the process's peak RSS in GiB (``ru_maxrss``, so run one setting
per process) and, on CUDA, the peak GPU memory allocated by torch. Figures depend on the
machine and on what else runs on it.

``--random-weights`` builds the architecture of ``--model``'s ``config.json`` with random
weights (seed 0) instead of loading its weights: the same size and the same kernels, so the
timing is representative, from a folder that needs only ``config.json`` and the tokenizer
files. A random model rarely emits EOS, so every completion runs to ``--max-new-tokens``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


def random_weights_folder(folder: str) -> str:
    """A copy of ``folder``'s model with random weights (seed 0) and its tokenizer files."""
    from transformers import AutoConfig, AutoModelForCausalLM

    source = Path(folder)
    if not (source / "config.json").exists():
        raise SystemExit(f"--random-weights needs {source / 'config.json'}; give --model DIR")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
    out = Path(tempfile.mkdtemp(prefix="bench_ppo_model_"))
    model.save_pretrained(out)
    weights = (".safetensors", ".bin", ".pt", ".gguf")
    for file in source.iterdir():
        if file.is_file() and file.name != "config.json" and not file.name.endswith(weights):
            shutil.copy(file, out / file.name)
    return str(out)


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
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument("--random-weights", action="store_true",
                        help="random weights in --model's architecture (see the docstring)")
    args = parser.parse_args()
    if args.random_weights and args.model is None:
        parser.error("--random-weights needs --model DIR (a folder with config.json)")
    model = random_weights_folder(args.model) if args.random_weights else args.model

    cfg = PPOConfig(
        model=model,
        task_options={"difficulty": "easy"},
        episodes=args.episodes,
        minibatch=min(4, args.episodes),
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        bf16=not args.no_bf16,
        threads=args.threads,
        device=args.device,
        out_dir=tempfile.mkdtemp(prefix="bench_ppo_"),
    )
    trainer = PPOTrainer(cfg)
    device = next(trainer.model.parameters()).device
    cuda = device.type == "cuda"

    def now() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    rollout_s, update_s, tokens = [], [], []
    for step in range(args.warmup + args.updates):
        indices = trainer.rng.integers(trainer.n_train, size=cfg.episodes)
        seeds = [int(trainer.rng.integers(2**31)) + e for e in range(cfg.episodes)]
        start = now()
        rollouts, _ = play(
            trainer.model, trainer.tokenizer, trainer.train_envs, indices, cfg,
            greedy=False, seeds=seeds,
        )
        middle = now()
        ppo_update(trainer.model, trainer.heads, trainer.optimizer, rollouts, cfg, trainer.rng)
        end = now()
        if step >= args.warmup:  # warm-up updates load kernels and caches
            rollout_s.append(middle - start)
            update_s.append(end - middle)
            tokens.append(sum(int(r.mask.sum()) for r in rollouts))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu = {}
    if cuda:
        gpu = {
            "gpu": torch.cuda.get_device_name(device),
            "peak_gpu_allocated_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
            "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved(device) / 2**30, 2),
        }
    print(json.dumps({
        "model": args.model or "embedded SmolLM2-135M-Instruct",
        "weights": "random (seed 0)" if args.random_weights else "pretrained",
        "device": str(device),
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
        **gpu,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "machine": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
