"""A tiny random causal LM saved as a transformers folder, for tests and smoke runs.

It needs no download: a 2-layer Llama of hidden size 32 with the byte-level ``ByT5Tokenizer``
(which ships its vocabulary in code) and a ChatML-like chat template. Its output is random bytes,
which is exactly what plumbing tests need; load it with
``TransformersBackend(str(save_tiny_lm(folder)))``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: A minimal ChatML-style template (Jinja), set on the byte tokenizer.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def save_tiny_lm(
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    max_position_embeddings: int = 512,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
) -> Path:
    """Build a random tiny Llama plus byte tokenizer and save both to ``folder``.

    Args:
        folder: Where to write (created if missing).
        seed: Seed of the random weights (same seed, same model).
        max_position_embeddings: The model's context length, small to exercise truncation.
        hidden_size: Width of the model.
        num_hidden_layers: Depth of the model.

    Returns:
        The folder, loadable with ``AutoModelForCausalLM.from_pretrained``.
    """
    import torch
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = ByT5Tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = max_position_embeddings
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
