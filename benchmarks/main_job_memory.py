"""Where the main job's memory and CPU go: the prompt-prefix store on and off.

Plays the default main job's episodes in one observation mode (default ensemble, easy arith,
10 episodes, batch 8, one thread) in a fresh process per setting, so each peak RSS is that
setting's own, and prints one JSON line per setting: CPU seconds, peak RSS (MiB), prompt tokens,
prompt tokens reused from the store, the backend's time split (prefill, decode, sampling, cache
moves, rendering and decoding text), completion tokens, group score.

    python benchmarks/main_job_memory.py --out benchmarks/results/main_job_memory.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def play(store_mib: float, observation: str, episodes: int) -> dict:
    """One setting, in this process (called in a child)."""
    import time

    import torch

    torch.set_num_threads(1)
    from spgg_env import provenance
    from spgg_env.agents.engine import Engine
    from spgg_env.agents.ensemble import build_ensemble
    from spgg_env.agents.episodes import EpisodeRunner
    from spgg_env.agents.run_job import RUN_DEFAULTS, RUN_TASK_OPTIONS
    from spgg_env.spec import GameSpec

    ensemble = build_ensemble(None)
    (backend,) = ensemble.backends
    backend.prefix_cache_mib = store_mib
    spec = GameSpec(task="arith", task_options=RUN_TASK_OPTIONS["arith"],
                    observation=observation, **RUN_DEFAULTS)
    engine = Engine(ensemble.backend_map(), max_batch=8, seed=0)
    start = time.process_time()
    records = [e.to_record() for e in EpisodeRunner(spec, ensemble, engine).run(episodes)]
    stats = backend.stats
    return {
        "prefix_store_mib": store_mib, "observation": observation, "episodes": episodes,
        "cpu_s": round(time.process_time() - start, 1),
        "peak_rss_mib": round(provenance.process_usage()["peak_rss_mib"]),
        "prompt_tokens": int(stats["prompt_tokens"]),
        "reused_tokens": int(stats["reused_tokens"]),
        **{key: round(stats[key], 2) for key in ("prefill_s", "decode_s", "sample_s", "move_s",
                                                  "render_s")},
        "completion_tokens": int(stats["completion_tokens"]),
        "decode_steps": int(stats["decode_steps"]),
        "group_score": sum(r["group_score"] for r in records) / len(records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="64,0", help="prefix-store sizes in MiB")
    parser.add_argument("--observation", default="full")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(play(args.child, args.observation, args.episodes)))
        return
    rows = []
    for mib in (float(m) for m in args.stores.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(mib), "--observation", args.observation,
             "--episodes", str(args.episodes)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        from spgg_env.provenance import environment

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "provenance": environment()}, indent=1)
                            + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
