"""Seconds per PPO update and peak memory of the PPO LLM learner (agents/ppo.py).

Every option of ``spgg train ppo`` sets the run (default: the embedded SmolLM2-135M-Instruct,
3 agents on easy ``arith``, 8 episodes per update, 48 new tokens, temperature 1); after
``--warmup`` untimed updates, ``--timed-updates`` updates are timed, each split into the rollout
(``PPOLearner.play_update``: the episodes on the engine) and the update
(``PPOLearner.learn``)::

    python benchmarks/bench_ppo.py --timed-updates 2 --threads 1
    python benchmarks/bench_ppo.py --dtype float32     # fp32 base, for comparison
    python benchmarks/bench_ppo.py --device cuda --model DIR --random-weights
    # the settings of examples/train_ppo_arith.py, smaller batch:
    python benchmarks/bench_ppo.py --task-option difficulty=easy --task-option max_steps=1 \
        --prompt-style compact --max-tokens 32 --max-new-tokens 32 --temperature 0.7 \
        --episodes 8 --minibatch-size 4 --threads 1

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

#: The benchmark's run where it differs from PPOConfig's defaults (options override it).
DEFAULTS = {"episodes": 8, "minibatch_size": 4, "temperature": 1.0}


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
    from spgg_env.agents.ppo import PPOConfig, PPOLearner
    from spgg_env.agents.train_cli import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timed-updates", type=int, default=2, help="updates timed")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument("--random-weights", action="store_true",
                        help="random weights in --model's architecture (see the docstring)")
    add_config_arguments(parser, PPOConfig)
    args = parser.parse_args()
    if args.random_weights and args.model is None:
        parser.error("--random-weights needs --model DIR (a folder with config.json)")
    if args.random_weights:
        args.model = random_weights_folder(args.model)
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="bench_ppo_")
    cfg = config_from_args(PPOConfig, args, DEFAULTS)
    learner = PPOLearner(cfg)
    cuda = learner.device.type == "cuda"

    def now() -> float:
        if cuda:
            torch.cuda.synchronize(learner.device)
        return time.perf_counter()

    rollout_s, update_s, tokens = [], [], []
    for step in range(args.warmup + args.timed_updates):
        start = now()
        episodes = learner.play_update()
        middle = now()
        metrics = learner.learn(episodes)
        end = now()
        if step >= args.warmup:  # warm-up updates load kernels and caches
            rollout_s.append(middle - start)
            update_s.append(end - middle)
            tokens.append(metrics["perf/tokens"])
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu = {}
    if cuda:
        gpu = {
            "gpu": torch.cuda.get_device_name(learner.device),
            "peak_gpu_allocated_gib": round(
                torch.cuda.max_memory_allocated(learner.device) / 2**30, 2),
            "peak_gpu_reserved_gib": round(
                torch.cuda.max_memory_reserved(learner.device) / 2**30, 2),
        }
    print(json.dumps({
        "model": cfg.model,
        "weights": "random (seed 0)" if args.random_weights else "pretrained",
        "device": str(learner.device),
        "base_dtype": str(next(learner.model.parameters()).dtype).removeprefix("torch."),
        "game": cfg.game.to_dict(),
        "episodes": cfg.episodes,
        "batch_size": cfg.batch_size,
        "max_new_tokens": cfg.max_new_tokens,
        "epochs": cfg.epochs,
        "minibatch_size": cfg.minibatch_size,
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
