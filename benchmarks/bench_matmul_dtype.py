"""float32 vs bfloat16 on this CPU: one linear layer's product and its backward, one thread.

The shape is a SmolLM2-135M MLP projection over a short batch (200 tokens x 576 -> 1536), the
work a PPO update repeats. Without native bf16 instructions (``avx512_bf16``/``amx_bf16``,
:func:`spgg_env.models.cpu_has_bf16`) torch emulates bf16 and is slower than float32, which is
why the learners' ``dtype="auto"`` picks float32 there::

    python benchmarks/bench_matmul_dtype.py --repeats 20

Prints one JSON line: seconds per product+backward for each dtype (mean of ``--repeats`` after
one warm-up), their ratio, and whether the CPU has native bf16.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spgg_env.models import cpu_has_bf16


def seconds(dtype: torch.dtype, repeats: int) -> float:
    """Mean seconds of ``(x @ w.T).sum().backward()`` in ``dtype``."""
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(1536, 576, generator=generator).to(dtype)
    x = torch.randn(200, 576, generator=generator).to(dtype).requires_grad_(True)
    (x @ w.T).float().sum().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        (x @ w.T).float().sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed products per dtype")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fp32, bf16 = seconds(torch.float32, args.repeats), seconds(torch.bfloat16, args.repeats)
    print(json.dumps({"float32_s": round(fp32, 4), "bfloat16_s": round(bf16, 4),
                      "bf16_over_fp32": round(bf16 / fp32, 2), "cpu_has_bf16": cpu_has_bf16(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability()}))


if __name__ == "__main__":
    main()
