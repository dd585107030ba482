"""The PPO learner before and after it moved onto the episode engine: same behaviour, update time.

Loads the previous implementation from a file (the ``agents/ppo.py`` of commit 326b0c6, which
stepped the env in its own loop and sampled with ``model.generate``) next to the current one, on
the settings of ``examples/train_ppo_arith.py`` (one-step easy arith, compact prompt, 3 agents,
32 new tokens = effort budget, temperature 0.7; smaller batch)::

    git show 326b0c6:agents/ppo.py > /tmp/ppo_before.py
    python benchmarks/ppo_before_after.py --before /tmp/ppo_before.py --rounds 2 --threads 1

1. **Behaviour.** Both start from the same LoRA initialisation (asserted). The old learner
   trains ``--train-updates`` updates; its adapters and value heads are copied into the new
   learner, and both evaluate greedily on the first ``--eval-size`` held-out problems (the old
   ``play(greedy=True)``, the new ``PPOLearner.evaluate`` on the engine). Printed: how many
   contributions are identical, and whether every score, group score and reward is.
2. **Update time.** ``--rounds`` rounds, each one old update (rollout + ``ppo_update``) then
   one new one (``play_update`` + ``learn``), alternating in one process so both see the same
   machine load; medians and the per-round new/old ratios of rollout, update and total.

Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time

import torch

SETTINGS = {"episodes": 8, "minibatch": 4, "max_new_tokens": 32, "temperature": 0.7,
            "lr": 3e-4, "beta": 0.05, "epochs": 2}
TASK_OPTIONS = {"difficulty": "easy", "max_steps": 1}


def load_before(path: str):
    spec = importlib.util.spec_from_file_location("ppo_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ppo_before"] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def before_config(module, args):
    return module.PPOConfig(
        model=None if args.model == "embedded" else args.model, task_options=dict(TASK_OPTIONS),
        n_agents=3, prompt_style="compact", eval_size=args.eval_size, eval_batch=32,
        train_split="train", eval_split="test", bf16=args.dtype == "bfloat16", threads=args.threads,
        device=args.device, seed=args.seed, out_dir=tempfile.mkdtemp(), **SETTINGS)


def after_config(args):
    from spgg_env.agents.ppo import PPOConfig
    from spgg_env.spec import GameSpec

    game = GameSpec(task="arith", task_options=TASK_OPTIONS, split="train", n_agents=3,
                    prompt_style="compact", max_tokens=SETTINGS["max_new_tokens"],
                    token_counting="model")
    settings = {k: v for k, v in SETTINGS.items() if k != "minibatch"}
    return PPOConfig(game=game, model=args.model, eval_size=args.eval_size, batch_size=32,
                     dtype=args.dtype, minibatch_size=SETTINGS["minibatch"], threads=args.threads,
                     device=args.device, seed=args.seed, out=tempfile.mkdtemp(), **settings)


def now() -> float:
    """Wall time, after the GPU (if any) has finished what it was given."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def before_update(module, trainer) -> tuple[float, float]:
    cfg = trainer.cfg
    start = now()
    indices = trainer.rng.integers(trainer.n_train, size=cfg.episodes)
    seed = int(trainer.rng.integers(2**31))
    rollouts, _ = module.play(trainer.model, trainer.tokenizer, trainer.train_envs, indices, cfg,
                              greedy=False, seeds=[seed + e for e in range(cfg.episodes)])
    middle = now()
    module.ppo_update(trainer.model, trainer.heads, trainer.optimizer, rollouts, cfg, trainer.rng)
    return middle - start, now() - middle


def after_update(learner) -> tuple[float, float]:
    start = now()
    episodes = learner.play_update()
    middle = now()
    learner.learn(episodes)
    return middle - start, now() - middle


def before_greedy(module, trainer) -> list[list[dict]]:
    """Per episode, per agent: contribution, score, reward, group score (old greedy play)."""
    cfg, rows = trainer.cfg, []
    total = min(cfg.eval_size, len(trainer.eval_envs[0].unwrapped.task.problems("test")))
    for start in range(0, total, cfg.eval_batch):
        indices = list(range(start, min(total, start + cfg.eval_batch)))
        _, infos = module.play(trainer.model, trainer.tokenizer, trainer.eval_envs, indices, cfg,
                               greedy=True, seeds=[i + 1 for i in indices])
        for e in range(len(indices)):
            rows.append([{"text": a[e]["contribution"], "score": a[e]["score"],
                          "reward": a[e]["reward_components"]["total"],
                          "group": a[e]["group_score"]} for a in infos])
    return rows


def after_greedy(learner) -> list[list[dict]]:
    _, episodes = learner.evaluate()
    return [[{"text": s.action, "score": s.info["score"], "reward": s.reward,
              "group": s.info["group_score"]} for s in e.steps] for e in episodes]


def main() -> None:
    from spgg_env.agents.ppo import PPOLearner

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the previous agents/ppo.py")
    parser.add_argument("--rounds", type=int, default=2, help="timed old/new update pairs")
    parser.add_argument("--train-updates", type=int, default=1,
                        help="old updates before the greedy comparison")
    parser.add_argument("--eval-size", type=int, default=32, help="held-out problems compared")
    parser.add_argument("--episodes", type=int, default=SETTINGS["episodes"],
                        help="episodes per update")
    parser.add_argument("--minibatch-size", type=int, default=SETTINGS["minibatch"],
                        help="completions per gradient step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="both runs' seed")
    parser.add_argument("--model", default="embedded", help="transformers folder or 'embedded'")
    parser.add_argument("--random-weights", action="store_true",
                        help="random weights in --model's architecture (bench_ppo.py)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="the frozen base's dtype in both (the old learner's bf16 flag)")
    args = parser.parse_args()
    if args.random_weights:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_ppo import random_weights_folder

        args.model = random_weights_folder(args.model)

    SETTINGS.update(episodes=args.episodes, minibatch=args.minibatch_size)
    began = time.perf_counter()

    def progress(what: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {what}", file=sys.stderr, flush=True)

    module = load_before(args.before)
    old = module.PPOTrainer(before_config(module, args))
    new = PPOLearner(after_config(args))
    progress("both learners built")
    for name, value in old.lora.items():
        assert torch.equal(value, new.lora[name]), f"different initial LoRA weight {name}"

    # 1. behaviour: the same adapters decode the same texts and earn the same scores
    for _ in range(args.train_updates):
        before_update(module, old)
        progress("old update done")
    with torch.no_grad():
        for name, value in old.lora.items():
            new.lora[name].copy_(value)
        new.heads.load_state_dict(old.heads.state_dict())
    a = before_greedy(module, old)
    progress("old greedy evaluation done")
    b = after_greedy(new)
    progress("new greedy evaluation done")
    pairs = [(x, y) for ea, eb in zip(a, b, strict=True) for x, y in zip(ea, eb, strict=True)]
    behaviour = {
        "episodes": len(a),
        "contributions": len(pairs),
        "identical_texts": sum(x["text"] == y["text"] for x, y in pairs),
        "identical_scores": sum(x["score"] == y["score"] for x, y in pairs),
        "identical_rewards": sum(abs(x["reward"] - y["reward"]) < 1e-9 for x, y in pairs),
        "identical_group_scores": sum(ea[-1]["group"] == eb[-1]["group"]
                                      for ea, eb in zip(a, b, strict=True)),
        "task_score_before": statistics.mean(e[-1]["group"] for e in a),
        "task_score_after": statistics.mean(e[-1]["group"] for e in b),
        "first_difference": next(({"before": x["text"], "after": y["text"]} for x, y in pairs
                                  if x["text"] != y["text"]), None),
    }
    print(json.dumps({"behaviour": behaviour}), flush=True)

    # 2. update time, alternating
    times: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        times["before"].append(before_update(module, old))
        times["after"].append(after_update(new))
        print(json.dumps({k: v[-1] for k, v in times.items()}), flush=True)

    def median(side: str, part: int | None) -> float:
        return statistics.median(sum(t) if part is None else t[part] for t in times[side])

    ratios = {
        label: [round((sum(n) if p is None else n[p]) / (sum(o) if p is None else o[p]), 3)
                for o, n in zip(times["before"], times["after"], strict=True)]
        for label, p in (("rollout", 0), ("update", 1), ("total", None))
    }
    print(json.dumps({
        "behaviour": behaviour,
        "seconds": {side: {"rollout": round(median(side, 0), 2),
                           "update": round(median(side, 1), 2),
                           "total": round(median(side, None), 2)} for side in times},
        "ratio_after_over_before_per_round": ratios,
        "settings": SETTINGS | {"task_options": TASK_OPTIONS, "threads": args.threads,
                                "rounds": args.rounds, "model": args.model,
                                "random_weights": args.random_weights, "dtype": args.dtype,
                                "device": str(new.device)},
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
