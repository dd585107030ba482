"""Where one decoding step of the backend's model spends its time.

Prefills ``--rows`` random prompts of ``--columns`` tokens into a cache, then times
``--steps`` single-token decoding steps shaped like the runner's (every row one new token,
attending over its whole cache in the backend's preallocated ``WindowCache``, through an
explicit mask in the form the backend passes, so the same kernels run): first with the model's
own ``nn.Linear`` path (``unpacked_ms_per_step``), then with the prepacked weights the
backend's sessions use, without the profiler (``plain_ms_per_step``) and then under
``torch.profiler``, grouped into attention (``scaled_dot_product_attention``), each kind of
linear layer (by weight shape: ``q_proj``, ``gate_proj/up_proj``, ``lm_head`` ...) and the rest
(norms, rotary embeddings, cache writes, Python)::

    python benchmarks/decode_step_profile.py --rows 8 --columns 1060 --dtype bfloat16 \\
        --out benchmarks/results/decode_step_profile.json

The profiled step is slower than the plain one (the profiler's overhead); the shares are what
to read.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from spgg_env import provenance
from spgg_env.agents.transformers_backend import TransformersBackend, WindowCache


def linear_kinds(model: torch.nn.Module) -> dict[tuple[int, int], str]:
    """``(in_features, out_features) -> "q_proj/o_proj"``: the linear layers sharing a shape."""
    names: dict[tuple[int, int], set[str]] = defaultdict(set)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            names[(module.in_features, module.out_features)].add(name.rpartition(".")[2])
    return {shape: "/".join(sorted(kinds)) for shape, kinds in names.items()}


def decode_step_profile(backend: TransformersBackend, rows: int, columns: int, steps: int,
                        seed: int = 0) -> dict[str, Any]:
    """Plain and profiled timings of ``steps`` decoding steps after a ``columns``-token prefill."""
    model = backend.model
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, backend.vocab, (rows, columns), generator=generator)
    kinds = linear_kinds(model)
    cache = WindowCache(model.config.get_text_config().num_hidden_layers, max_rows=rows)
    cache.capacity = columns + 4 + 3 * steps  # prefill, warm-up, unpacked, plain, profiled
    length = columns

    def step() -> None:
        nonlocal length
        cache.select(slice(0, rows), write=length, attend_from=0)
        allowed = torch.ones(rows, 1, 1, length + 1, dtype=torch.bool)
        mask = allowed if backend.mask_kind == "bool" else torch.zeros(
            allowed.shape, dtype=model.dtype)  # an additive mask that allows everything
        position = torch.full((rows, 1), length)
        model(input_ids=ids[:, -1:], attention_mask=mask, position_ids=position, cache=cache,
              use_cache=True)
        length += 1

    with torch.inference_mode():
        cache.select(slice(0, rows), write=0, attend_from=0)
        model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        for _ in range(3):  # warm-up
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        unpacked_ms = (time.perf_counter() - start) / steps * 1e3
        with backend.packed_linears.active():
            step()  # packs the weights
            start = time.perf_counter()
            for _ in range(steps):
                step()
            plain_ms = (time.perf_counter() - start) / steps * 1e3
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                profiled_ms = (time.perf_counter() - start) / steps * 1e3
    groups: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        ms = event.self_cpu_time_total / 1e3 / steps
        if "scaled_dot_product" in event.key:
            groups["attention (sdpa)"] += ms
        elif event.key in ("aten::mm", "aten::addmm", "mkldnn::_linear_pointwise") \
                and len(event.input_shapes) >= 2:
            weight = tuple(event.input_shapes[1])  # (in, out) for x @ W.T; (out, in) packed
            if event.key.startswith("mkldnn"):
                weight = weight[::-1]
            kind = kinds.get(weight, kinds.get(weight[::-1], "other matmul"))
            groups[f"linear {kind}"] += ms
        else:
            groups["other"] += ms
    total = sum(groups.values())
    return {
        "rows": rows, "columns": columns, "steps": steps,
        "plain_ms_per_step": plain_ms,
        "unpacked_ms_per_step": unpacked_ms,
        "packed_linears": backend.packed_linears.enabled,
        "profiled_ms_per_step": profiled_ms,
        "profiled_ms_by_group": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "share_by_group": {k: v / total for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--columns", type=int, default=1060, help="cache length per row")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = TransformersBackend(args.model, dtype=args.dtype, device="cpu")
    result = {
        **decode_step_profile(backend, args.rows, args.columns, args.steps),
        "dtype": str(next(backend.model.parameters()).dtype),
        "threads": args.threads,
        **provenance.environment(),
    }
    for group, ms in result["profiled_ms_by_group"].items():
        print(f"{group:32s} {ms:7.2f} ms  {result['share_by_group'][group]:6.1%}")
    print(f"plain {result['plain_ms_per_step']:.1f} ms/step (unpacked linear layers "
          f"{result['unpacked_ms_per_step']:.1f}), profiled "
          f"{result['profiled_ms_per_step']:.1f} ms/step ({args.rows} rows x {args.columns})")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
