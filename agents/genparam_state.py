"""The generation-parameter learner's state: what an agent's observation tells its network.

From the v1 observation only (``task``, ``position``, ``contributions``, ``visible``)::

    s = [E(task), onehot(position), n_visible / (n - 1), log(1 + T_vis) / log(1 + n * T_max),
         E(visible contributions)]

where ``E`` is a frozen sentence embedding (:class:`TextEmbedder`: mean of a transformer's last
hidden states over the text's tokens, L2-normalised), ``T_vis`` the tokens of the contributions
the agent sees (joined with blank lines for ``E``; ``E`` is 0 when it sees none) and ``T_max``
the game's effort budget ``max_tokens``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spgg_env.agents.learning import model_path


def observed(observation: Mapping[str, Any]) -> tuple[str, int, list[str]]:
    """``(task text, position, texts of the visible contributions)`` of a v1 observation."""
    seen = [text for text, flag in zip(observation["contributions"], observation["visible"],
                                       strict=True) if flag]
    return str(observation["task"]), int(observation["position"]), seen


class TextEmbedder:
    """Frozen sentence embedding: mean of a transformer's last hidden states, L2-normalised.

    Works with any transformers model folder or object: an encoder such as all-MiniLM-L6-v2
    (its sentence-transformers recipe is exactly this mean pooling) or a causal LM such as the
    embedded SmolLM2 (the default, :func:`spgg_env.embedded_model.embedded_model_path`, so no
    extra download or package is needed). Embeddings are cached by text.

    Args:
        model: A folder, a hub id, ``"embedded"``, or a ready ``PreTrainedModel``.
        tokenizer: Needed with a ready model; loaded from the folder otherwise.
        max_length: Texts are cut to this many tokens (from the left: the end of a prompt
            holds the newest context).
        batch_size: Texts embedded per forward pass.
        device: Where the model runs: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"``...; ``None`` (default) keeps a ready model where it is and loads a folder
            on ``"auto"``. Embeddings come back on the CPU either way.
    """

    def __init__(
        self,
        model: Any = "embedded",
        tokenizer: Any = None,
        *,
        max_length: int = 256,
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        from spgg_env.models import resolve_device

        if isinstance(model, str | Path):
            path = model_path(model)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path, dtype=torch.float32)
            device = device or "auto"
        if tokenizer is None:
            raise ValueError("a ready model needs its tokenizer: TextEmbedder(model, tokenizer)")
        if device is not None:
            model = model.to(resolve_device(device))
        self.model = model.eval().requires_grad_(False)
        self.device = next(model.parameters()).device
        self.tokenizer = copy.deepcopy(tokenizer)  # a backend's shared tokenizer stays as it was
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = int(model.config.hidden_size)
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def from_source(cls, source: Mapping[str, Any], device: str = "cpu") -> TextEmbedder:
        """Rebuild the embedder a checkpoint names: ``{"model", "dtype", "max_length"}``, loaded
        in its training dtype (not cast afterwards: a cast also rounds the rotary buffers)."""
        from transformers import AutoModel, AutoTokenizer

        path = model_path(str(source["model"]))
        dtype = getattr(torch, source.get("dtype", "float32"))
        model = AutoModel.from_pretrained(path, dtype=dtype)
        return cls(model.to(device), AutoTokenizer.from_pretrained(path),
                   max_length=int(source["max_length"]))

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape ``(len(texts), dim)``, float32."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            batch = self.tokenizer(
                [t or " " for t in chunk],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
            for text, vector in zip(chunk, pooled.cpu().numpy(), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)


class StateEncoder:
    """Builds the state vectors (formula in the module docstring).

    Args:
        embedder: Anything with ``dim`` and ``embed(texts) -> (len, dim)`` array.
        n_agents: Number of agents.
        max_tokens: The game's effort budget (tokens at which effort reaches 1).
        count_tokens: ``text -> tokens`` (e.g. ``backend.count_tokens``).
    """

    def __init__(
        self,
        embedder: Any,
        n_agents: int,
        max_tokens: int = 512,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.embedder = embedder
        self.n_agents = n_agents
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens or (lambda text: len(text.split()))
        self.dim = 2 * embedder.dim + n_agents + 2

    def observations(self, observations: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """States of a batch of v1 observations, shape ``(B, dim)``."""
        rows = [observed(o) for o in observations]
        return self.encode([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])

    def encode(self, task_texts: Sequence[str], positions: Sequence[int],
               visible: Sequence[Sequence[str]]) -> torch.Tensor:
        """States of a batch: task text, position and visible contributions of each row."""
        task = self.embedder.embed(list(task_texts))
        joined = ["\n\n".join(v) for v in visible]
        nonempty = [t for t in joined if t]
        context = np.zeros((len(joined), self.embedder.dim), dtype=np.float32)
        if nonempty:
            embedded = dict(zip(nonempty, self.embedder.embed(nonempty), strict=True))
            for row, text in enumerate(joined):
                if text:
                    context[row] = embedded[text]
        onehot = np.eye(self.n_agents, dtype=np.float32)[list(positions)]
        n_visible = np.array([len(v) for v in visible], np.float32) / max(1, self.n_agents - 1)
        tokens = np.array([sum(self.count_tokens(t) for t in v) for v in visible], np.float32)
        length = np.log1p(tokens) / math.log1p(self.n_agents * self.max_tokens)
        parts = [task, onehot, n_visible[:, None], length[:, None], context]
        return torch.from_numpy(np.concatenate(parts, axis=1))
