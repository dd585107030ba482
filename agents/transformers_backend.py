"""Local causal LMs through ``transformers``, with per-prompt generation parameters in one batch.

:class:`TransformersBackend` loads any causal LM (a hub id, a local folder, or ``"embedded"`` for
the offline SmolLM2-135M-Instruct default of :mod:`spgg_env.embedded_model`), renders chat
prompts with the tokenizer's chat template, left-pads the batch, and decodes with a small loop
over the model's KV cache. The loop (rather than ``model.generate``) is what lets every row of one
batch carry its own :class:`~spgg_env.agents.backend.GenerationParams`, and gives each completion
token's log-probability and the OpenAI-style presence penalty, which ``generate`` lacks.

Per step and per row, on the next-token logits ``z``:

1. repetition penalty ``r`` (CTRL / HF convention) on every token already in the prompt or the
   completion: ``z_t <- z_t / r`` if ``z_t > 0`` else ``z_t * r``;
2. presence penalty ``a`` (OpenAI convention) on every token already in the completion:
   ``z_t <- z_t - a``;
3. greedy rows (temperature 0) take ``argmax z``; sampled rows use ``z / T``, keep the ``top_k``
   largest, then the smallest set of most likely tokens whose mass reaches ``top_p``, renormalise
   and draw from a ``torch.Generator`` seeded per call.

The recorded log-probability is that of the drawn token under the distribution it was drawn from
(after step 3); for greedy rows, whose sampling distribution is a point mass, it is
``log_softmax(z)`` of the chosen token (temperature 1, after penalties).

Context overflow: when a rendered prompt plus its ``max_new_tokens`` exceeds the model's context,
the prompt keeps its head (system prompt, instruction and task statement: the first half of the
token budget) and its tail (the most recent contributions and the turn instruction) and drops the
oldest history between them, replaced by a ``[...]`` marker; the generation is flagged
``prompt_truncated=True``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import torch

from spgg_env.agents.backend import ChatPrompt, Generation, GenerationParams, per_prompt_params
from spgg_env.models import (
    FALLBACK_CONTEXT,
    load_model_and_tokenizer,
    resolve_device,
    resolve_dtype,
)
from spgg_env.seeding import derive_seed

log = logging.getLogger(__name__)

#: Text put where the middle of an over-long prompt was cut out.
TRUNCATION_MARKER = "\n[...]\n"


class TransformersBackend:
    """A local causal LM behind the :class:`~spgg_env.agents.backend.Backend` interface.

    Args:
        model: Hub id, local folder, or ``"embedded"`` (SmolLM2-135M-Instruct, offline).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (see :func:`resolve_dtype`), ``"float32"`` or ``"bfloat16"``.
        max_context: Context length in tokens (prompt + completion); defaults to the model's.
        seed: Seeds the backend's own generator, used when a call gives no seed.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "embedded",
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_context: int | None = None,
        seed: int = 0,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model, self.tokenizer, self.model_path = load_model_and_tokenizer(
            model, self.device, self.dtype
        )
        self.model_name = str(model)
        self._setup(max_context, seed)

    @classmethod
    def wrap(cls, model: Any, tokenizer: Any, *, name: str | None = None,
             max_context: int | None = None, seed: int = 0) -> TransformersBackend:
        """A backend over an already loaded model (e.g. a learner's model with its adapters);
        the model stays where it is, in its dtype."""
        self = cls.__new__(cls)
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        self.model, self.tokenizer = model, tokenizer
        self.model_name = name or getattr(model, "name_or_path", "") or type(model).__name__
        self.model_path = getattr(getattr(model, "config", None), "_name_or_path", None)
        self._setup(max_context, seed)
        return self

    def _setup(self, max_context: int | None, seed: int) -> None:
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.max_context = int(max_context or self._model_context())
        self.eos_ids = self._eos_ids()
        self._rng = torch.Generator().manual_seed(seed)
        self._marker_ids = self._encode(TRUNCATION_MARKER)

    # ------------------------------------------------------------------ info
    def describe(self) -> dict[str, Any]:
        """Model, path, device, dtype, context and parameter count, for result files."""
        return {
            "backend": "transformers",
            "model": self.model_name,
            "path": self.model_path,
            "architecture": type(self.model).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "max_context": self.max_context,
        }

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` (no special tokens added)."""
        return len(self._encode(text))

    def render(self, prompt: ChatPrompt) -> str:
        """The prompt as the model reads it: chat template plus the assistant turn's opening.

        Tokenizers without a chat template get a plain ``role: content`` transcript.
        """
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                list(prompt), tokenize=False, add_generation_prompt=True
            )
        lines = [f"{m['role']}: {m['content']}" for m in prompt]
        return "\n".join([*lines, "assistant:"])

    # -------------------------------------------------------------- generate
    def generate(
        self,
        prompts: Sequence[ChatPrompt],
        params: Sequence[GenerationParams] | GenerationParams,
        *,
        seed: int | Sequence[int] | None = None,
    ) -> list[Generation]:
        """Generate one completion per prompt in one left-padded batch (see module docstring).

        A failure of the batch (e.g. out of memory) yields ``finish_reason="error"``
        generations, never an exception, so that no episode is lost.
        """
        params = per_prompt_params(prompts, params)
        if not prompts:
            return []
        start = time.perf_counter()
        try:
            results = self._generate(list(prompts), list(params), seed)
        except Exception as exc:  # noqa: BLE001 - recorded per prompt, the game goes on
            log.exception("generation failed for a batch of %d prompts", len(prompts))
            error = f"{type(exc).__name__}: {exc}"
            results = [Generation("", 0, 0, finish_reason="error", error=error) for _ in prompts]
        latency = time.perf_counter() - start
        for result in results:
            result.latency_s = latency
        return results

    @torch.inference_mode()
    def _generate(
        self, prompts: list[ChatPrompt], params: list[GenerationParams],
        seed: int | Sequence[int] | None,
    ) -> list[Generation]:
        pairs = zip(prompts, params, strict=True)
        rows = [self._prompt_ids(p, gp.max_new_tokens) for p, gp in pairs]
        ids, mask = self._left_pad([r[0] for r in rows])
        n, vocab = ids.shape[0], self.model.config.vocab_size
        budgets = [min(gp.max_new_tokens, self.max_context - len(r[0]))
                   for gp, r in zip(params, rows, strict=True)]
        generator = self._generator(seed)

        # Per-row state of the rows still generating; a finished row leaves the batch (and
        # the KV cache), so stragglers do not pay for the rows that are done.
        live = {
            "row": torch.arange(n, device=self.device),
            "temperature": torch.tensor([gp.temperature for gp in params], device=self.device),
            "top_p": torch.tensor([gp.top_p for gp in params], device=self.device),
            "top_k": torch.tensor([gp.top_k or vocab for gp in params], device=self.device),
            "repetition": torch.tensor([gp.repetition_penalty for gp in params],
                                       device=self.device),
            "presence": torch.tensor([gp.presence_penalty for gp in params], device=self.device),
            "seen": torch.zeros(n, vocab, dtype=torch.bool, device=self.device),
            "in_completion": torch.zeros(n, vocab, dtype=torch.bool, device=self.device),
            "mask": mask,
            "position": (mask.cumsum(-1) - 1).clamp(min=0),
        }
        row, col = mask.nonzero(as_tuple=True)
        live["seen"][row, ids[row, col]] = True
        out_tokens: list[list[int]] = [[] for _ in range(n)]
        out_logprobs: list[list[float]] = [[] for _ in range(n)]
        finish = ["length"] * n

        out = self.model(input_ids=ids, attention_mask=mask, position_ids=live["position"],
                         use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        for _ in range(max(budgets)):
            logits = _penalise(out.logits[:, -1, :vocab].float(), live["seen"],
                               live["in_completion"], live["repetition"], live["presence"])
            tokens, logprobs = _choose(logits, live["temperature"], live["top_k"],
                                       live["top_p"], generator)
            keep = []
            for j, i in enumerate(live["row"].tolist()):
                token = int(tokens[j])
                if token in self.eos_ids:
                    finish[i] = "stop"
                    continue
                out_tokens[i].append(token)
                out_logprobs[i].append(float(logprobs[j]))
                if len(out_tokens[i]) < budgets[i]:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(tokens):
                index = torch.tensor(keep, device=self.device)
                live = {name: value[index] for name, value in live.items()}
                tokens = tokens[index]
                cache.batch_select_indices(index)
            step = torch.arange(len(keep), device=self.device)
            live["seen"][step, tokens] = True
            live["in_completion"][step, tokens] = True
            live["mask"] = torch.cat([live["mask"], torch.ones_like(live["mask"][:, :1])], dim=1)
            live["position"] = live["position"][:, -1:] + 1
            out = self.model(input_ids=tokens.unsqueeze(1), attention_mask=live["mask"],
                             position_ids=live["position"], past_key_values=cache,
                             use_cache=True)
        return [
            Generation(
                text=self.tokenizer.decode(out_tokens[i], skip_special_tokens=True),
                prompt_tokens=len(rows[i][0]),
                completion_tokens=len(out_tokens[i]),
                logprobs=out_logprobs[i],
                finish_reason=finish[i],
                prompt_truncated=rows[i][1],
                prompt_ids=list(rows[i][0]),
                token_ids=out_tokens[i],
            )
            for i in range(n)
        ]

    # --------------------------------------------------------------- helpers
    def _encode(self, text: str) -> list[int]:
        # verbose=False: over-long prompts are expected here; _prompt_ids cuts them.
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def _prompt_ids(self, prompt: ChatPrompt, max_new_tokens: int) -> tuple[list[int], bool]:
        """Token ids of a prompt, cut in the middle to fit the context; and whether cut."""
        ids = self._encode(self.render(prompt))
        budget = max(self.max_context - max_new_tokens, self.max_context // 2)
        if len(ids) <= budget:
            return ids, False
        head = max((budget - len(self._marker_ids)) // 2, 1)
        tail = max(budget - head - len(self._marker_ids), 1)
        return ids[:head] + self._marker_ids + ids[-tail:], True

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows],
                            device=self.device)
        return ids, mask

    def _generator(self, seed: int | Sequence[int] | None) -> torch.Generator:
        if seed is not None and not isinstance(seed, int):  # one stream for the whole call
            seed = derive_seed(0, *(int(s) for s in seed))
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=self._rng))
        return torch.Generator(device=self.device).manual_seed(seed)

    def _model_context(self) -> int:
        config = self.model.config
        limits = [getattr(config, "max_position_embeddings", None),
                  getattr(self.tokenizer, "model_max_length", None)]
        limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**7]
        return min(limits) if limits else FALLBACK_CONTEXT

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.model.config,
                       self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids


def _penalise(
    logits: torch.Tensor,
    seen: torch.Tensor,
    in_completion: torch.Tensor,
    repetition: torch.Tensor,
    presence: torch.Tensor,
) -> torch.Tensor:
    """Apply the per-row repetition and presence penalties (steps 1-2 of the module docstring)."""
    r = repetition.unsqueeze(1)
    penalised = torch.where(logits > 0, logits / r, logits * r)
    logits = torch.where(seen, penalised, logits)
    return logits - presence.unsqueeze(1) * in_completion


def _choose(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row (step 3); return the tokens and their log-probabilities."""
    greedy = temperature == 0
    tokens = logits.argmax(-1)
    logprobs = torch.log_softmax(logits, -1).gather(1, tokens.unsqueeze(1)).squeeze(1)
    if bool(greedy.all()):
        return tokens, logprobs
    scaled = logits / torch.where(greedy, 1.0, temperature).unsqueeze(1)
    widest = int(top_k[~greedy].max())  # only the widest top-k of the sampled rows is sorted
    if widest < scaled.shape[1]:
        values, order = scaled.topk(widest, dim=-1)
    else:
        values, order = scaled.sort(-1, descending=True)
    ranks = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
    keep = ranks < top_k.unsqueeze(1)
    probs = torch.softmax(values.masked_fill(~keep, float("-inf")), -1)
    keep &= (probs.cumsum(-1) - probs) < top_p.unsqueeze(1)
    dist = torch.log_softmax(values.masked_fill(~keep, float("-inf")), -1)
    pick = torch.multinomial(dist.exp(), 1, generator=generator)
    sampled = order.gather(1, pick).squeeze(1)
    sampled_logprob = dist.gather(1, pick).squeeze(1)
    return (torch.where(greedy, tokens, sampled),
            torch.where(greedy, logprobs, sampled_logprob))
