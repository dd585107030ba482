"""Scaling of distributed rollouts: episodes/s with 1 and 2 Ray workers, and Ray's start-up cost.

Two loopback OpenAI-compatible servers (``tests/fake_openai_server.py``) each decode ``--slots``
sequences at once at a fixed ``--token-latency`` per completion token, so the figure shows how
the rollout scales with workers, not how fast this CPU runs a model. Worker i keeps to server
``i mod 2``; one worker therefore uses one server, two workers use both. Every worker runs the
engine's continuous schedule with ``--batch-size`` requests in flight.

Run::

    python benchmarks/bench_scaling.py --episodes 48 --out runs/bench_scaling.json

It prints and writes episodes/s for 1 and 2 workers once they are up (after a warm-up chunk),
their ratio (goal: >= 1.8), and the seconds Ray took to start (``ray.init``) and to bring up
the workers (each imports the package and builds its ensemble).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai_server import FakeServer  # noqa: E402

from spgg_env.agents.distributed import WorkerPool, chunks, require_ray  # noqa: E402
from spgg_env.spec import GameSpec  # noqa: E402


def measure(config: dict, spec: GameSpec, episodes: int, workers: int,
            batch_size: int) -> tuple[float, float]:
    """(episodes/s once the workers are up, seconds to start the workers)."""
    start = time.perf_counter()
    pool = WorkerPool([spec], config, workers=workers, batch_size=batch_size)
    pool.ready()
    startup = time.perf_counter() - start
    try:
        list(pool.play(chunks([spec], 2 * batch_size * workers, batch_size)))  # warm up
        start = time.perf_counter()
        played = [r for _, r in pool.play(chunks([spec], episodes, batch_size))]
        rate = episodes / (time.perf_counter() - start)
    finally:
        pool.close()
    failed = sum(r["group_score"] is None for r in played)
    if failed:
        raise RuntimeError(f"{failed} episodes failed")
    return rate, startup


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=48, help="episodes per measurement")
    parser.add_argument("--batch-size", type=int, default=4, help="requests in flight per worker")
    parser.add_argument("--slots", type=int, default=4, help="sequences each server decodes")
    parser.add_argument("--token-latency", type=float, default=0.01,
                        help="seconds per completion token at the server")
    parser.add_argument("--reply-words", type=int, default=24, help="tokens per reply")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)

    ray = require_ray()
    servers = [FakeServer("vllm", slots=args.slots, token_latency_s=args.token_latency,
                          reply_words=args.reply_words) for _ in range(2)]
    config = {"defaults": {"backend": {"kind": "openai", "model": "fake",
                                       "base_url": [s.url for s in servers],
                                       "concurrency": args.batch_size},
                           "params": {"max_new_tokens": args.reply_words}},
              "agents": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    spec = GameSpec(task="arith", token_counting="model", max_tokens=args.reply_words)
    try:
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - start
        one, startup_one = measure(config, spec, args.episodes, 1, args.batch_size)
        two, startup_two = measure(config, spec, args.episodes, 2, args.batch_size)
    finally:
        ray.shutdown()
        for server in servers:
            server.stop()
    ideal = args.slots / (3 * args.reply_words * args.token_latency)  # one server, full slots
    result = {
        "episodes": args.episodes, "batch_size": args.batch_size, "slots": args.slots,
        "token_latency_s": args.token_latency, "reply_tokens": args.reply_words,
        "ray_init_s": round(init_s, 2),
        "worker_startup_s": {"1": round(startup_one, 2), "2": round(startup_two, 2)},
        "episodes_per_s": {"1": round(one, 3), "2": round(two, 3)},
        "speedup_2_over_1": round(two / one, 3),
        "one_server_ideal_episodes_per_s": round(ideal, 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
