"""Rollout throughput: four ways to generate the same episodes' texts, against a roofline.

One process, one model instance, the same requests and settings for every path:

* ``runner``: the continuous runner, ``Engine(schedule="continuous")`` + ``EpisodeRunner``
  (what ``spgg run`` does): the backend's session keeps ``--batch-size`` rows decoding.
* ``lockstep``: ``Engine(schedule="lockstep")`` + ``EpisodeRunner``: waves of
  ``--batch-size`` episodes, one ``generate`` call per agent position.
* ``backend_generate``: ``TransformersBackend.generate`` on the runner's requests (prompts,
  parameters, seeds), grouped by agent, in batches of ``--batch-size``.
* ``generate``: ``model.generate`` (transformers) on the same batches, each batch with its
  agent's temperature, top-p, top-k, repetition penalty and ``max_new_tokens`` (it has no
  presence penalty, no per-row parameters and no log-probabilities).
* ``baseline_lockstep`` (with ``--baseline-ref REF``): the lockstep runner over the
  ``TransformersBackend`` of git commit ``REF`` (its file loaded from git, wrapped around the same
  model), e.g. the backend before continuous batching.
* ``runner_kN``, ``generate_kN`` (with ``--extra-batch-sizes N,...``): the runner and
  ``model.generate`` at other batch sizes (a batch fills only with as many live episodes).

Paths alternate (``--rounds`` rounds, order rotated each round) so that a machine shared with
other jobs slows them alike; compare them by their ratios. Each reports completion tokens/s and
total (prompt + completion) tokens/s, its wall time and its peak resident memory (Linux: the
high-water mark is reset before each path).

**Roofline.** FLOPs of the work the runner's episodes need, ``2 x`` the weights of every linear
layer a token passes through (the LM head only for tokens whose logits are used) plus attention
(``4 x layers x heads x head_dim x context``), against the throughput the model's own linear
layers reach on this machine at the same dtype and thread count with 256 rows at once:
``roofline_tokens_per_s = matmul FLOP/s x completion tokens / FLOPs of all prompt and completion
tokens``. A memory bound is given too: decoding ``--batch-size`` rows reads every weight once a
step, ``bandwidth_tokens_per_s = batch x copy bandwidth / weight bytes``.

**Profile.** For the paths on our backend: where the backend's time went (chat template and
tokenisation, prefill, decoding forwards, sampling with penalties and bookkeeping, cache moves),
prompt tokens reused from the prefix store, and the padding waste of decoding (attended columns
over the rows' own lengths); for the runners, the time outside generation (engine, env steps
and scoring).

Defaults are the default main job's episodes (``spgg run``: the default ensemble, three embedded
SmolLM2-135M-Instruct agents, task ``arith``, partial observation, 20 episodes, batch 8, effort
counted in model tokens, ``max_tokens`` 128, dtype ``auto``, easy problems, two worked
exemplars per turn)::

    python benchmarks/bench_rollout.py --threads 2 --out bench_rollout.json
    python benchmarks/bench_rollout.py --threads 1 --episodes 8 --greedy --baseline-ref 326b0c6

Every episode path on our backend samples each request from its own seed, so its texts should
equal the runner's; ``texts_differing_from_runner`` counts those that do not (floating-point
near-ties, see ``agents/transformers_backend.py``). ``--greedy`` decodes every agent greedily.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from spgg_env import provenance
from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.engine import Engine, Request
from spgg_env.agents.ensemble import Ensemble, build_ensemble
from spgg_env.agents.episodes import EpisodeRunner
from spgg_env.agents.llm_agent import LLMAgent
from spgg_env.agents.run_job import RUN_TASK_OPTIONS
from spgg_env.spec import GameSpec, parse_key_values

REPO = Path(__file__).resolve().parents[1]
BACKEND_FILE = "agents/transformers_backend.py"


# --------------------------------------------------------------------------------- paths
def run_episodes(ensemble: Ensemble, spec: GameSpec, episodes: int, batch: int, seed: int,
                 schedule: str) -> dict[str, Any]:
    """Play the episodes with one runner; tokens, texts and the runner's requests."""
    engine = Engine(ensemble.backend_map(), max_batch=batch, schedule=schedule, seed=seed)
    runner = EpisodeRunner(spec, ensemble, engine)
    start = time.perf_counter()
    played = list(runner.run(episodes, seed=seed))
    wall = time.perf_counter() - start
    steps = [s for e in played for s in e.steps]
    return {
        "seconds": wall,
        "prompt_tokens": sum(s.generation.prompt_tokens for s in steps if s.generation),
        "completion_tokens": sum(s.generation.completion_tokens for s in steps if s.generation),
        "failed_generations": sum(bool(s.generation and s.generation.finish_reason == "error")
                                  for s in steps),
        "outside_generation_s": wall - engine.stats["generation_s"],
        "texts": [s.action for s in steps],
        "lengths": [(s.generation.prompt_tokens, s.generation.completion_tokens)
                    for s in steps if s.generation],
        "requests": [(s.position, s.request) for s in steps if s.request is not None],
        "group_score_mean": _mean([e.group_score for e in played]),
    }


def batches_by_agent(requests: list[tuple[int, Request]], batch: int) -> list[list[Request]]:
    """The runner's requests grouped by agent position, cut into batches."""
    out = []
    for position in sorted({p for p, _ in requests}):
        mine = [r for p, r in requests if p == position]
        out += [mine[i : i + batch] for i in range(0, len(mine), batch)]
    return out


def backend_generate(backend: Any, batches: list[list[Request]]) -> dict[str, Any]:
    """``TransformersBackend.generate`` on each batch (per-row parameters and seeds)."""
    prompt = completion = 0
    start = time.perf_counter()
    for chunk in batches:
        for g in backend.generate([r.prompt for r in chunk], [r.params for r in chunk],
                                  seed=[r.seed for r in chunk]):
            prompt += g.prompt_tokens
            completion += g.completion_tokens
    return {"seconds": time.perf_counter() - start, "prompt_tokens": prompt,
            "completion_tokens": completion}


def hf_generate(backend: Any, batches: list[list[Request]], seed: int) -> dict[str, Any]:
    """``model.generate`` on each batch, with the batch's (one agent's) parameters."""
    tokenizer, model = backend.tokenizer, backend.model
    eos = sorted(backend.eos_ids)
    prompt = completion = 0
    torch.manual_seed(seed)
    start = time.perf_counter()
    for chunk in batches:
        p: GenerationParams = chunk[0].params
        texts = [backend.render(r.prompt) for r in chunk]
        enc = tokenizer(texts, add_special_tokens=False, padding=True,
                        return_tensors="pt").to(backend.device)
        sampling = ({"do_sample": True, "temperature": p.temperature, "top_p": p.top_p,
                     "top_k": p.top_k or None} if p.temperature > 0 else {"do_sample": False})
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=p.max_new_tokens, eos_token_id=eos,
                                 pad_token_id=tokenizer.pad_token_id,
                                 repetition_penalty=p.repetition_penalty, **sampling)
        new = out[:, enc["input_ids"].shape[1] :]
        ended = torch.isin(new, torch.tensor(eos, device=new.device))
        completion += int((ended.long().cumsum(-1) == 0).sum())  # tokens before the first EOS
        prompt += int(enc["attention_mask"].sum())
    return {"seconds": time.perf_counter() - start, "prompt_tokens": prompt,
            "completion_tokens": completion}


def baseline_backend_class(ref: str) -> type:
    """``TransformersBackend`` as it was at git commit ``ref`` (or in the file ``ref``)."""
    if Path(ref).is_file():
        source = Path(ref).read_text(encoding="utf-8")
    else:
        source = subprocess.run(["git", "show", f"{ref}:{BACKEND_FILE}"], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("baseline_backend", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{ref}:{BACKEND_FILE}", "exec"), module.__dict__)  # noqa: S102
    return module.TransformersBackend


def with_backend(ensemble: Ensemble, backend: Any) -> Ensemble:
    """The same agents (names, parameters, roles) on another backend."""
    return Ensemble([LLMAgent(a.name, backend, a.params, a.system_prompt, a.n_agents)
                     for a in ensemble.agents], ensemble.config)


# ------------------------------------------------------------------------------ roofline
def linear_layers(model: torch.nn.Module) -> tuple[list[torch.nn.Linear], torch.nn.Module]:
    """The linear layers of one decoder layer, and the LM head."""
    head = model.get_output_embeddings()
    first_layer = model.get_decoder().layers[0]
    return [m for m in first_layer.modules() if isinstance(m, torch.nn.Linear)], head


def matmul_flops_per_s(model: torch.nn.Module, rows: int = 256, repeats: int = 3) -> float:
    """FLOP/s of the model's own linear layers (one decoder layer and the LM head) on ``rows``
    tokens at once, best of ``repeats``."""
    layers, head = linear_layers(model)
    p = next(model.parameters())
    best = float("inf")
    flops = sum(2 * rows * m.in_features * m.out_features for m in [*layers, head])
    with torch.inference_mode():
        x = {m.in_features: torch.randn(rows, m.in_features, dtype=p.dtype, device=p.device)
             for m in [*layers, head]}
        for _ in range(repeats):
            start = time.perf_counter()
            for m in [*layers, head]:
                torch.nn.functional.linear(x[m.in_features], m.weight)
            best = min(best, time.perf_counter() - start)
    return flops / best


def copy_bandwidth(mib: int = 256, repeats: int = 3) -> float:
    """Bytes/s of a large tensor copy (read + write), best of ``repeats``."""
    a = torch.empty(mib * 2**18)  # float32
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - start)
    return 2 * a.numel() * 4 / best


def work_flops(model: torch.nn.Module, prompt_lengths: list[int],
               completion_lengths: list[int]) -> float:
    """FLOPs to prefill every prompt and decode every completion (see the module docstring)."""
    layers, head = linear_layers(model)
    config = model.config.get_text_config()
    n_layers = config.num_hidden_layers
    per_layer = sum(2 * m.in_features * m.out_features for m in layers)
    lm_head = 2 * head.in_features * head.out_features
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    width = config.num_attention_heads * head_dim
    attention = 4 * n_layers * width  # per token, per token of context
    total = 0.0
    for p, c in zip(prompt_lengths, completion_lengths, strict=True):
        total += p * n_layers * per_layer + lm_head + attention * p * (p + 1) / 2
        total += c * (n_layers * per_layer + lm_head) + attention * sum(
            p + i + 1 for i in range(c))
    return total


def roofline(backend: Any, lengths: list[tuple[int, int]], batch: int) -> dict[str, Any]:
    """Compute and memory bounds for generations of these (prompt, completion) lengths."""
    prompts, completions = [p for p, _ in lengths], [c for _, c in lengths]
    flops = work_flops(backend.model, prompts, completions)
    rate = matmul_flops_per_s(backend.model)
    completion = sum(completions)
    total = completion + sum(prompts)
    weight_bytes = sum(p.numel() * p.element_size() for p in backend.model.parameters())
    bandwidth = copy_bandwidth()
    return {
        "matmul_gflop_per_s": rate / 1e9,
        "work_gflop": flops / 1e9,
        "roofline_tokens_per_s": rate * completion / flops,
        "roofline_total_tokens_per_s": rate * total / flops,
        "copy_bandwidth_gb_per_s": bandwidth / 1e9,
        "weight_mib": weight_bytes / 2**20,
        "bandwidth_tokens_per_s": batch * bandwidth / weight_bytes,
    }


# ------------------------------------------------------------------------------- helpers
def reset_peak_memory() -> bool:
    """Reset the process's resident-memory high-water mark (Linux); True when it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mib() -> float:
    """The resident-memory high-water mark since the last reset (else since the start)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The backend's stats spent in one path, plus derived shares."""
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    if d.get("prompt_tokens"):
        d["reused_share"] = d["reused_tokens"] / d["prompt_tokens"]
    if d.get("decode_columns"):
        d["padding_waste"] = 1 - d["decode_lengths"] / d["decode_columns"]
    if d.get("decode_steps"):
        d["mean_decode_rows"] = d["decode_rows"] / d["decode_steps"]
    return d


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _rates(result: dict[str, Any]) -> dict[str, Any]:
    seconds = result["seconds"]
    result["tokens_per_s"] = result["completion_tokens"] / seconds
    result["total_tokens_per_s"] = (result["prompt_tokens"] + result["completion_tokens"]) / seconds
    return result


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of all paths")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=None, help="ensemble config (default: built-in)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", default=None, help="auto (default), float32, bfloat16")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--greedy", action="store_true", help="every agent decodes greedily")
    parser.add_argument("--paths", default="runner,lockstep,backend_generate,generate",
                        help="comma-separated paths to measure (the runner always runs)")
    parser.add_argument("--extra-batch-sizes", default="",
                        help="comma-separated batch sizes at which the runner and model.generate "
                             "are also measured (paths runner_kN, generate_kN)")
    parser.add_argument("--baseline-ref", default=None,
                        help="also run the lockstep runner on the backend of this git commit "
                             "(or of this file)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    GameSpec.add_arguments(parser, max_tokens=128, token_counting="model")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # the main job's task options (easy arith) unless --task-option says otherwise
    options = {**RUN_TASK_OPTIONS.get(args.task, {}),
               **parse_key_values(args.task_options, "--task-option")}
    spec = GameSpec.from_args(args, task_options=options)
    ensemble = build_ensemble(args.config, model=args.model, dtype=args.dtype, device=args.device,
                              max_new_tokens=args.max_new_tokens, n_agents=spec.n_agents)
    if args.greedy:
        for agent in ensemble.agents:
            agent.params = replace(agent.params, temperature=0.0)
    if len(ensemble.backends) != 1 or not hasattr(ensemble.backends[0], "model"):
        raise SystemExit("bench_rollout needs an ensemble of one local transformers model")
    backend = ensemble.backends[0]
    backend.generate([[{"role": "user", "content": "warm up"}]],
                     GenerationParams(max_new_tokens=4))

    paths: dict[str, Callable[[], dict[str, Any]]] = {}
    state: dict[str, Any] = {}

    def runner() -> dict[str, Any]:
        result = run_episodes(ensemble, spec, args.episodes, args.batch_size, args.seed,
                              "continuous")
        state.setdefault("requests", result["requests"])
        return result

    paths["runner"] = runner
    wanted = set(args.paths.split(","))
    if "lockstep" in wanted:
        paths["lockstep"] = lambda: run_episodes(ensemble, spec, args.episodes,
                                                 args.batch_size, args.seed, "lockstep")
    if "backend_generate" in wanted:
        paths["backend_generate"] = lambda: backend_generate(
            backend, batches_by_agent(state["requests"], args.batch_size))
    if "generate" in wanted:
        paths["generate"] = lambda: hf_generate(
            backend, batches_by_agent(state["requests"], args.batch_size), args.seed)
    for k in (int(x) for x in args.extra_batch_sizes.split(",") if x):
        paths[f"runner_k{k}"] = lambda k=k: run_episodes(ensemble, spec, args.episodes, k,
                                                         args.seed, "continuous")
        if "generate" in wanted:
            paths[f"generate_k{k}"] = lambda k=k: hf_generate(
                backend, batches_by_agent(state["requests"], k), args.seed)
    if args.baseline_ref:
        old = baseline_backend_class(args.baseline_ref).wrap(backend.model, backend.tokenizer)
        baseline = with_backend(ensemble, old)
        paths["baseline_lockstep"] = lambda: run_episodes(baseline, spec, args.episodes,
                                                          args.batch_size, args.seed, "lockstep")

    names = list(paths)
    results: dict[str, dict[str, Any]] = {}
    peak_reset = True
    for r in range(args.rounds):
        rest = names[1:]  # the runner goes first: the generate paths replay its requests
        shift = r % len(rest) if rest else 0
        for name in names[:1] + rest[shift:] + rest[:shift]:
            peak_reset = reset_peak_memory() and peak_reset
            before = dict(backend.stats)
            result = paths[name]()
            result["peak_rss_mib"] = peak_memory_mib()
            result["profile"] = profile_delta(before, backend.stats)
            acc = results.setdefault(name, {"rounds": [], "texts": result.get("texts"),
                                            "lengths": result.get("lengths")})
            acc["rounds"].append({k: v for k, v in result.items()
                                  if k not in ("texts", "requests", "lengths")})
            print(f"round {r} {name}: {result['completion_tokens']} completion tokens in "
                  f"{result['seconds']:.1f} s "
                  f"({result['completion_tokens'] / result['seconds']:.1f} tok/s)", flush=True)

    summary = {}
    for name, acc in results.items():
        rounds = acc["rounds"]
        summary[name] = _rates({
            "seconds": sum(x["seconds"] for x in rounds),
            "prompt_tokens": sum(x["prompt_tokens"] for x in rounds),
            "completion_tokens": sum(x["completion_tokens"] for x in rounds),
            "peak_rss_mib": max(x["peak_rss_mib"] for x in rounds),
            "rounds": rounds,
        })
    bounds = roofline(backend, results["runner"]["lengths"], args.batch_size)
    runner_rate = summary["runner"]["tokens_per_s"]
    out = {
        "runner_tokens_per_s": runner_rate,
        "lockstep_tokens_per_s": summary.get("lockstep", {}).get("tokens_per_s"),
        "generate_tokens_per_s": summary.get("generate", {}).get("tokens_per_s"),
        "backend_generate_tokens_per_s": summary.get("backend_generate", {}).get("tokens_per_s"),
        "baseline_lockstep_tokens_per_s": summary.get("baseline_lockstep", {}).get(
            "tokens_per_s"),
        "roofline_tokens_per_s": bounds["roofline_tokens_per_s"],
        "runner_total_tokens_per_s": summary["runner"]["total_tokens_per_s"],
        "peak_rss_mib": {name: s["peak_rss_mib"] for name, s in summary.items()},
        "peak_rss_reset_per_path": peak_reset,
        "ratios_to_runner": {name: s["tokens_per_s"] / runner_rate
                             for name, s in summary.items()},
        "roofline": bounds,
        "paths": summary,
        "settings": {**vars(args), "spec": spec.to_dict()},
        "backend": backend.describe(),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "platform": platform.platform(), "load_avg_end": os.getloadavg()},
        **provenance.environment(),
    }
    mine = results["runner"]["texts"]  # same seeds: the same texts on our backend, any schedule
    out["texts_compared"] = len(mine)
    out["texts_differing_from_runner"] = {
        name: sum(x != y for x, y in zip(mine, acc["texts"], strict=True))
        for name, acc in results.items()
        if acc.get("texts") is not None and name not in ("runner", "baseline_lockstep")
    }
    print(json.dumps({k: v for k, v in out.items() if k.endswith("_per_s") or k.startswith(
        ("texts", "peak", "ratios"))}, indent=2, default=str))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n",
                                  encoding="utf-8")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
