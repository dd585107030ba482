"""Local causal LMs through ``transformers``: continuous batching with per-row parameters.

:class:`TransformersBackend` loads any causal LM with full-attention layers (a hub id, a local
folder, or ``"embedded"`` for the offline SmolLM2-135M-Instruct default of
:mod:`spgg_env.embedded_model`) and renders chat prompts with the tokenizer's chat template. All
generation goes through one decoding loop, a :class:`DecodeSession`: the episode engine drives
one directly (``backend.session(max_batch)``, continuous batching) and :meth:`generate` runs one
over a single batch.

**Continuous batching.** A session holds up to ``max_batch`` rows in one key/value cache
(:class:`WindowCache`: preallocated ``[rows, kv_heads, capacity, head_dim]`` buffers per layer).
Every decoding step feeds each live row its last token and writes the new keys/values of all
rows at one shared column ``end``; row ``i`` attends over its own columns ``[start_i, end]``
(a per-row 4-D mask) at its own position ids. A request is admitted between steps: its prompt is
prefilled alone (batch 1, no padding) straight into a free row at columns ``[end - L, end)``, and
its first token is drawn from the prefill's logits. A finished row leaves at once: the remaining
rows are packed into the first slots, and the attended window ``[min start, end]`` shrinks to the
oldest live row, so padding waste stays bounded by the longest live row. When ``end`` reaches the
capacity, the window is moved back to the buffer's start (one copy, every ``slack`` steps at
most); the capacity follows the longest ``prompt + max_new_tokens`` admitted (rounded up to a
multiple of ``CAPACITY_STEP`` columns, so the buffers are rarely reallocated), so the cache does
not grow with the number of requests served. In bfloat16 on CPU the linear layers multiply by
prepacked weights (:mod:`spgg_env.agents.packed_linear`; same products, faster).

**Prefix reuse.** A session remembers the keys/values of the prompts it prefilled (a
least-recently-used store bounded in MiB). A new prompt copies the longest prefix it shares with
a stored prompt (at least ``16`` tokens) and prefills only the rest: in the game, every prompt of
an agent starts with the same system prompt and task instruction (about 75 tokens of SmolLM2's
150-290). Keys/values depend on everything before them, so nothing after the first differing
token is shared (the agents' different system prompts come before the shared task text).

**Decoding, per row and step**, on the next-token logits ``z``:

1. repetition penalty ``r`` (CTRL / HF convention) on every token already in the prompt or the
   completion: ``z_t <- z_t / r`` if ``z_t > 0`` else ``z_t * r``;
2. presence penalty ``a`` (OpenAI convention) on every token already in the completion:
   ``z_t <- z_t - a``;
3. greedy rows (temperature 0) take ``argmax z``; sampled rows use ``z / T``, keep the ``top_k``
   largest, then the smallest set of most likely tokens whose mass reaches ``top_p``, and draw
   from that renormalised distribution ``p`` by the **Gumbel-max trick**:
   ``token = argmax_t (log p_t + g_t)`` with ``g_t = -log(-log u_t)``, which is an exact draw
   from ``p``. The uniforms come from a counter-based hash, ``u_t = (h(row, n, t) + 1/2) / 2^32``
   with ``row`` the request's seed, ``n`` the index of the token being drawn and ``t`` the token
   id, so a row's text depends on its seed alone, never on which rows share its batch, and all
   rows are drawn at once with tensor operations.

The recorded log-probability is that of the drawn token under the distribution it was drawn from
(``log p_t`` after step 3); for greedy rows, whose sampling distribution is a point mass, it is
``log_softmax(z)`` of the chosen token (temperature 1, after penalties).

Greedy texts do not depend on scheduling in exact arithmetic; in floating point a row's logits
can differ in the last bits with the batch it is decoded in, which can flip a near-tie (rare in
float32, more frequent in bfloat16; ``benchmarks/bench_rollout.py`` counts them).

Context overflow: when a rendered prompt plus its ``max_new_tokens`` exceeds the model's context,
the prompt keeps its head (system prompt, instruction and task statement: the first half of the
token budget) and its tail (the most recent contributions and the turn instruction) and drops the
oldest history between them, replaced by a ``[...]`` marker; the generation is flagged
``prompt_truncated=True``.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import CacheLayerMixin, DynamicLayer

from spgg_env.agents.backend import (
    ChatPrompt,
    Generation,
    GenerationParams,
    per_prompt_params,
    per_prompt_seeds,
)
from spgg_env.agents.packed_linear import PackedLinears
from spgg_env.models import (
    FALLBACK_CONTEXT,
    load_model_and_tokenizer,
    resolve_device,
    resolve_dtype,
)

log = logging.getLogger(__name__)

#: Text put where the middle of an over-long prompt was cut out.
TRUNCATION_MARKER = "\n[...]\n"
#: Shortest shared prompt head worth copying from the prefix store.
MIN_PREFIX_TOKENS = 16
#: Longest piece of prompt prefilled in one forward pass (bounds the attention mask's memory).
PREFILL_CHUNK = 512
#: Free columns kept after the window when it is moved (steps between two moves).
WINDOW_SLACK = 64
#: The cache's capacity grows in multiples of this many columns, so that it is reallocated
#: rarely (each reallocation of slightly larger buffers leaves the old ones as heap holes).
CAPACITY_STEP = 256
#: Attention implementations whose 4-D masks this module builds (boolean or additive).
MASKS = {"sdpa": "bool", "eager": "additive"}


class TransformersBackend:
    """A local causal LM behind the :class:`~spgg_env.agents.backend.Backend` interface.

    Args:
        model: Hub id, local folder, or ``"embedded"`` (SmolLM2-135M-Instruct, offline).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (see :func:`resolve_dtype`), ``"float32"`` or ``"bfloat16"``.
        max_context: Context length in tokens (prompt + completion); defaults to the model's.
        seed: Seeds the backend's own generator, used when a call gives no seed.
        prefix_cache_mib: Memory of a session's store of prompt keys/values (0 disables reuse).

    Raises:
        ValueError: If the model has sliding-window or linear-attention layers, or an attention
            implementation other than ``sdpa``/``eager`` (the session's cache and masks cover
            full attention only).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "embedded",
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_context: int | None = None,
        seed: int = 0,
        prefix_cache_mib: float = 64.0,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model, self.tokenizer, self.model_path = load_model_and_tokenizer(
            model, self.device, self.dtype
        )
        self.model_name = str(model)
        self._setup(max_context, seed, prefix_cache_mib)

    @classmethod
    def wrap(cls, model: Any, tokenizer: Any, *, name: str | None = None,
             max_context: int | None = None, seed: int = 0,
             prefix_cache_mib: float = 64.0) -> TransformersBackend:
        """A backend over an already loaded model (e.g. a learner's model with its adapters);
        the model stays where it is, in its dtype."""
        self = cls.__new__(cls)
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        self.model, self.tokenizer = model, tokenizer
        self.model_name = name or getattr(model, "name_or_path", "") or type(model).__name__
        self.model_path = getattr(getattr(model, "config", None), "_name_or_path", None)
        self._setup(max_context, seed, prefix_cache_mib)
        return self

    def _setup(self, max_context: int | None, seed: int, prefix_cache_mib: float) -> None:
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.max_context = int(max_context or self._model_context())
        self.vocab = int(self.model.config.get_text_config().vocab_size)
        self.eos_ids = self._eos_ids()
        self.prefix_cache_mib = float(prefix_cache_mib)
        self.mask_kind = _mask_kind(self.model)
        self.n_layers = _full_attention_layers(self.model)
        self._rng = torch.Generator().manual_seed(seed)
        self._marker_ids = self._encode(TRUNCATION_MARKER)
        #: The model's linear layers with prepacked weights, used by sessions (bfloat16 on CPU).
        self.packed_linears = PackedLinears(self.model)
        #: Cumulative time (s) and counts of all sessions (see :meth:`DecodeSession.poll`).
        self.stats: dict[str, float] = dict.fromkeys(STATS, 0.0)

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
    def session(self, max_batch: int) -> DecodeSession:
        """A continuous-batching session of at most ``max_batch`` rows (the engine's
        :class:`~spgg_env.agents.engine.Session`).

        The memory earlier sessions freed is handed back to the system first: glibc keeps
        freed buffers in its heap, where the next session's do not all fit, and the default
        main job's peak was 1,376-1,385 MiB with this call removed by hand, 1,251-1,272 MiB
        with it (``python benchmarks/main_job_peak.py``)."""
        _trim_heap()
        return DecodeSession(self, max_batch)

    def generate(
        self,
        prompts: Sequence[ChatPrompt],
        params: Sequence[GenerationParams] | GenerationParams,
        *,
        seed: int | Sequence[int] | None = None,
    ) -> list[Generation]:
        """Generate one completion per prompt, all prompts in one session.

        Each prompt samples from its own seed (``per_prompt_seeds``; with ``seed=None``, seeds
        drawn from the backend's generator). A failure (e.g. out of memory) yields
        ``finish_reason="error"`` generations, never an exception, so that no episode is lost.
        """
        params = per_prompt_params(prompts, params)
        seeds = per_prompt_seeds(len(prompts), seed)
        if not prompts:
            return []
        seeds = [s if s is not None else int(torch.randint(0, 2**62, (1,), generator=self._rng))
                 for s in seeds]
        session = self.session(len(prompts))
        for i, (prompt, gp, s) in enumerate(zip(prompts, params, seeds, strict=True)):
            session.submit(i, prompt, gp, s)
        done: dict[Hashable, Generation] = {}
        while len(done) < len(prompts):
            done.update(session.poll())
        return [done[i] for i in range(len(prompts))]

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


#: The timing and count keys of ``TransformersBackend.stats``.
STATS = (
    "render_s",         # chat template, tokenisation and detokenisation
    "prefill_s",        # forward passes over prompts
    "decode_s",         # forward passes of decoding steps
    "sample_s",         # penalties, sampling, bookkeeping of decoding steps
    "move_s",           # cache moves: admission room, window moves, packing after removals
    "window_moves",     # times the window was moved back or the buffers grown
    "requests",         # admitted requests
    "prompt_tokens",    # their prompt tokens
    "reused_tokens",    # prompt tokens copied from the prefix store instead of prefilled
    "completion_tokens",
    "decode_steps",
    "decode_rows",      # sum over steps of the rows decoded
    "decode_columns",   # sum over steps of rows x attended columns (padding waste: vs. lengths)
    "decode_lengths",   # sum over steps of the rows' own lengths
)


# ------------------------------------------------------------------------------- session
@dataclass(eq=False)
class _Row:
    """A request in a session: what it asked for and what it has produced."""

    key: Hashable
    prompt_ids: list[int]
    truncated: bool
    submitted: float
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class DecodeSession:
    """Continuous batching over one backend's model (see the module docstring).

    The engine's :class:`~spgg_env.agents.engine.Session`: :meth:`submit` queues a request,
    :meth:`poll` admits what is queued and decodes until at least one row has finished.
    Per-row state lives in tensors indexed by slot; rows ``0..n-1`` are live.

    Args:
        backend: The backend whose model, tokenizer and parameters it uses.
        max_batch: Most rows decoded together.
    """

    def __init__(self, backend: TransformersBackend, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        self.backend = backend
        self.max_batch = int(max_batch)
        self.queue: deque[tuple[Hashable, ChatPrompt, GenerationParams, int, float]] = deque()
        self.rows: list[_Row] = []
        self.cache = WindowCache(backend.n_layers, self.max_batch)
        self.store = PrefixStore(backend.prefix_cache_mib * 2**20)
        self.end = 0  # the column the next decoding step writes
        self.capacity_needed = 0  # longest prompt + budget admitted, plus slack
        self.longest_prompt = 0
        device, vocab, b = backend.device, backend.vocab, self.max_batch
        self.eos = torch.zeros(vocab, dtype=torch.bool, device=device)
        self.eos[[t for t in backend.eos_ids if 0 <= t < vocab]] = True
        self.token_hash = _mix32(torch.arange(vocab, device=device) ^ _VOCAB_SALT)
        zeros = dict(device=device)
        self.state: dict[str, torch.Tensor] = {
            "start": torch.zeros(b, dtype=torch.long, **zeros),     # first column of the row
            "position": torch.zeros(b, dtype=torch.long, **zeros),  # position of `last`
            "last": torch.zeros(b, dtype=torch.long, **zeros),      # next input token
            "count": torch.zeros(b, dtype=torch.long, **zeros),     # tokens generated
            "budget": torch.zeros(b, dtype=torch.long, **zeros),
            "stream": torch.zeros(b, dtype=torch.long, **zeros),    # hash of the row's seed
            "temperature": torch.zeros(b, **zeros),
            "top_p": torch.ones(b, **zeros),
            "top_k": torch.zeros(b, dtype=torch.long, **zeros),
            "repetition": torch.ones(b, **zeros),
            "presence": torch.zeros(b, **zeros),
            "seen": torch.zeros(b, vocab, dtype=torch.bool, **zeros),
            "in_completion": torch.zeros(b, vocab, dtype=torch.bool, **zeros),
        }

    @property
    def n(self) -> int:
        """Live rows."""
        return len(self.rows)

    # --------------------------------------------------------------- protocol
    def room(self) -> int:
        """How many more requests the session admits now."""
        return self.max_batch - self.n - len(self.queue)

    def submit(self, key: Hashable, prompt: ChatPrompt, params: GenerationParams,
               seed: int) -> None:
        """Queue one request; it is admitted at the next :meth:`poll`."""
        self.queue.append((key, prompt, params, int(seed), time.perf_counter()))

    @torch.inference_mode()
    def poll(self) -> list[tuple[Hashable, Generation]]:
        """Admit the queued requests, then decode until at least one row has finished.

        A request that fails on its own (rendering, prefill) comes back as an ``"error"``
        generation while the others go on; a failed decoding step fails every live row.
        """
        done: list[tuple[Hashable, Generation]] = []
        with self.backend.packed_linears.active():
            while self.queue and self.n < self.max_batch:
                self._admit(*self.queue.popleft(), done)
            while self.n and not done:
                try:
                    done += self._step()
                except Exception as exc:  # noqa: BLE001 - recorded per row, the game goes on
                    log.exception("decoding step failed for %d rows", self.n)
                    done += [(row.key, _failed(exc, row.submitted)) for row in self.rows]
                    self.rows = []
        return done

    # -------------------------------------------------------------- admission
    def _admit(self, key: Hashable, prompt: ChatPrompt, params: GenerationParams, seed: int,
               submitted: float, done: list[tuple[Hashable, Generation]]) -> None:
        """Prefill one request into the next free slot and draw its first token; a failure
        fails this request only (its slot stays free)."""
        backend, stats, slot = self.backend, self.backend.stats, self.n
        row = None
        try:
            start = time.perf_counter()
            ids, truncated = backend._prompt_ids(prompt, params.max_new_tokens)
            length = len(ids)
            budget = min(params.max_new_tokens, backend.max_context - length)
            stats["render_s"] += time.perf_counter() - start
            self.longest_prompt = max(self.longest_prompt, length)
            self.capacity_needed = max(self.capacity_needed, length + budget + WINDOW_SLACK)
            start = time.perf_counter()
            self._make_room(length)
            base = self.end - length
            reused = self.store.copy_prefix(ids, self.cache, slot, base)
            stats["move_s"] += time.perf_counter() - start
            start = time.perf_counter()
            logits = self._prefill(slot, ids, base, reused)
            self.store.add(ids, self.cache, slot, base)
            stats["prefill_s"] += time.perf_counter() - start
            self._set_row(slot, ids, base, budget, params, seed)
            row = _Row(key, ids, truncated, submitted)
            self.rows.append(row)
            done += self._accept(logits.unsqueeze(0), slice(slot, slot + 1))
        except Exception as exc:  # noqa: BLE001 - this request fails, the others go on
            log.exception("admitting a request failed")
            if row is not None and self.rows and self.rows[-1] is row:
                self.rows.pop()
            done.append((key, _failed(exc, submitted)))
            return
        stats["requests"] += 1
        stats["prompt_tokens"] += length
        stats["reused_tokens"] += reused

    def _set_row(self, slot: int, ids: list[int], base: int, budget: int,
                 params: GenerationParams, seed: int) -> None:
        """Per-row state of a newly prefilled request (its last prompt token is "last")."""
        s, vocab = self.state, self.backend.vocab
        values = {"start": base, "position": len(ids) - 1, "count": 0, "budget": budget,
                  "stream": _stream(seed), "temperature": params.temperature,
                  "top_p": params.top_p, "top_k": params.top_k,
                  "repetition": params.repetition_penalty, "presence": params.presence_penalty}
        for name, value in values.items():
            s[name][slot] = value
        s["seen"][slot] = False
        s["seen"][slot, torch.tensor([t for t in ids if t < vocab], dtype=torch.long,
                                     device=self.backend.device)] = True
        s["in_completion"][slot] = False

    def _prefill(self, slot: int, ids: list[int], base: int, reused: int) -> torch.Tensor:
        """Run the prompt's tokens after the ``reused`` ones through the model, writing row
        ``slot``'s keys/values at columns ``base + i``; return the last token's logits."""
        device = self.backend.device
        out = None
        for first in range(reused, len(ids), PREFILL_CHUNK):
            last = min(first + PREFILL_CHUNK, len(ids))
            self.cache.select(slice(slot, slot + 1), write=base + first, attend_from=base)
            keys = torch.arange(last, device=device)
            queries = torch.arange(first, last, device=device)
            allowed = keys.unsqueeze(0) <= queries.unsqueeze(1)  # causal, over the row only
            out = self.backend.model(
                input_ids=torch.tensor([ids[first:last]], device=device),
                attention_mask=self._mask(allowed[None, None]),
                position_ids=queries.unsqueeze(0), cache=self.cache, use_cache=True,
                logits_to_keep=1,
            )
        return out.logits[0, -1, : self.backend.vocab].float()

    # --------------------------------------------------------------- decoding
    def _step(self) -> list[tuple[Hashable, Generation]]:
        """One decoding step of every live row."""
        stats, s, n = self.backend.stats, self.state, self.n
        start = time.perf_counter()
        self._make_room(0)
        stats["move_s"] += time.perf_counter() - start
        start = time.perf_counter()
        low = int(s["start"][:n].min())
        columns = torch.arange(low, self.end + 1, device=self.backend.device)
        allowed = columns.unsqueeze(0) >= s["start"][:n].unsqueeze(1)
        self.cache.select(slice(0, n), write=self.end, attend_from=low)
        out = self.backend.model(
            input_ids=s["last"][:n].unsqueeze(1),
            attention_mask=self._mask(allowed[:, None, None, :]),
            position_ids=s["position"][:n].unsqueeze(1), cache=self.cache, use_cache=True,
        )
        self.end += 1
        stats["decode_s"] += time.perf_counter() - start
        stats["decode_steps"] += 1
        stats["decode_rows"] += n
        stats["decode_columns"] += n * (self.end - low)
        stats["decode_lengths"] += int((self.end - s["start"][:n]).sum())
        return self._accept(out.logits[:, -1, : self.backend.vocab].float(), slice(0, n))

    def _accept(self, logits: torch.Tensor, rows: slice) -> list[tuple[Hashable, Generation]]:
        """Draw the next token of ``rows`` from their logits, record it, and retire the rows
        that stop (end of sequence) or reach their budget."""
        start = time.perf_counter()
        s = self.state
        if bool((s["repetition"][rows] != 1).any() or (s["presence"][rows] != 0).any()):
            logits = _penalise(logits, s["seen"][rows], s["in_completion"][rows],
                               s["repetition"][rows], s["presence"][rows])
        keys = _mix32(s["stream"][rows] ^ _mix32(s["count"][rows] + _STEP_SALT))
        tokens, logprobs = _choose(logits, s["temperature"][rows], s["top_k"][rows],
                                   s["top_p"][rows], keys, self.token_hash)
        stop = self.eos[tokens]
        s["count"][rows] += ~stop
        ended = stop | (s["count"][rows] >= s["budget"][rows])
        indices = torch.arange(rows.start, rows.stop, device=tokens.device)
        s["last"][rows] = tokens
        s["position"][rows] += 1
        s["seen"][indices, tokens] = True
        s["in_completion"][indices, tokens] = True
        finished = []
        for i, token, logprob, stopped, over in zip(
            range(rows.start, rows.stop), tokens.tolist(), logprobs.tolist(), stop.tolist(),
            ended.tolist(), strict=True,
        ):
            row = self.rows[i]
            if not stopped:
                row.tokens.append(token)
                row.logprobs.append(logprob)
            if over:
                finished.append((i, "stop" if stopped else "length"))
        self.backend.stats["completion_tokens"] += int((~stop).sum())
        self.backend.stats["sample_s"] += time.perf_counter() - start
        return self._retire(finished)

    def _retire(self, finished: list[tuple[int, str]]) -> list[tuple[Hashable, Generation]]:
        """Turn finished rows into generations and pack the live rows into the first slots."""
        if not finished:
            return []
        stats, start = self.backend.stats, time.perf_counter()
        decode = self.backend.tokenizer.decode
        out = []
        for i, reason in finished:
            row = self.rows[i]
            out.append((row.key, Generation(
                text=decode(row.tokens, skip_special_tokens=True),
                prompt_tokens=len(row.prompt_ids),
                completion_tokens=len(row.tokens),
                logprobs=row.logprobs,
                finish_reason=reason,
                prompt_truncated=row.truncated,
                latency_s=start - row.submitted,
                prompt_ids=row.prompt_ids,
                token_ids=row.tokens,
            )))
        stats["render_s"] += time.perf_counter() - start
        start = time.perf_counter()
        gone = {i for i, _ in finished}
        keep = [i for i in range(self.n) if i not in gone]
        self.rows = [self.rows[i] for i in keep]
        if keep != list(range(len(keep))):
            index = torch.tensor(keep, device=self.backend.device)
            for value in self.state.values():
                value[: len(keep)] = value[index]
            if keep:
                low = int(self.state["start"][: len(keep)].min())
                self.cache.gather_rows(index, low, self.end)
        stats["move_s"] += time.perf_counter() - start
        return out

    # ------------------------------------------------------------------ cache
    def _make_room(self, length: int) -> None:
        """Make ``end >= length`` (room for a prompt of ``length`` tokens before ``end``) and
        ``end < capacity`` (room for the next step), moving the window or growing the buffers.

        The window ``[low, end)`` of live rows moves to end at ``max(width, length,
        longest prompt so far)``, so that prompts like those seen fit without another move.
        """
        if not self.rows:
            self.end = 0
        if length <= self.end < self.cache.capacity:
            return
        low = int(self.state["start"][: self.n].min()) if self.rows else self.end
        width = self.end - low
        new_end = max(width, length, self.longest_prompt)
        needed = max(new_end + WINDOW_SLACK, self.capacity_needed)
        capacity = (self.cache.capacity if needed <= self.cache.capacity
                    else -(-needed // CAPACITY_STEP) * CAPACITY_STEP)  # rounded up
        self.cache.move(self.n, low, self.end, new_end, capacity)
        self.backend.stats["window_moves"] += 1
        self.state["start"][: self.n] += new_end - self.end
        self.end = new_end

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        """A boolean "may attend" mask in the form the model's attention implementation takes."""
        if self.backend.mask_kind == "bool":
            return allowed
        dtype = self.backend.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def _trim_heap() -> None:
    """Return the C heap's free memory to the system (glibc's ``malloc_trim``; elsewhere a
    no-op)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _failed(exc: BaseException, submitted: float) -> Generation:
    return Generation("", 0, 0, finish_reason="error", error=f"{type(exc).__name__}: {exc}",
                      latency_s=time.perf_counter() - submitted)


def _mask_kind(model: Any) -> str:
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    if implementation not in MASKS:
        raise ValueError(f"attention implementation {implementation!r} is not supported; load "
                         f"the model with attn_implementation in {sorted(MASKS)}")
    return MASKS[implementation]


def _full_attention_layers(model: Any) -> int:
    """The number of layers, after checking that every one is full attention."""
    config = model.config.get_text_config(decoder=True)
    layers = DynamicCache(config=config).layers
    kinds = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if kinds:
        raise ValueError(f"{type(model).__name__} has {', '.join(kinds)} layers; this backend "
                         "batches full-attention models only")
    return int(config.num_hidden_layers)


# --------------------------------------------------------------------------------- cache
class _WindowLayer(CacheLayerMixin):
    """One layer's keys/values in a :class:`WindowCache` (allocated at its first update)."""

    is_sliding = False

    def __init__(self, owner: WindowCache) -> None:
        super().__init__()
        # a proxy, not a reference: no cycle, so a finished session's buffers are freed at once
        # (by reference counting), not at the garbage collector's next pass
        self.owner = weakref.proxy(owner)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        rows, capacity = self.owner.max_rows, self.owner.capacity
        self.keys = key_states.new_zeros((rows, key_states.shape[1], capacity,
                                          key_states.shape[3]))
        self.values = value_states.new_zeros((rows, value_states.shape[1], capacity,
                                              value_states.shape[3]))
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new columns at the owner's write position; return the attended window."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        rows, write, first = self.owner.rows, self.owner.write, self.owner.attend_from
        last = write + key_states.shape[2]
        self.keys[rows, :, write:last] = key_states
        self.values[rows, :, write:last] = value_states
        return self.keys[rows, :, first:last], self.values[rows, :, first:last]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.write - self.owner.attend_from + query_length, 0

    def get_seq_length(self) -> int:
        return self.owner.write - self.owner.attend_from

    def get_max_length(self) -> int:
        return self.owner.capacity


class WindowCache(Cache):
    """Keys/values of up to ``max_rows`` sequences in preallocated per-layer buffers.

    Before each forward pass the session says which rows it runs, at which column the new
    keys/values go (``write``) and from which column the rows attend (``attend_from``); every
    layer writes in place and returns the window ``[attend_from, write + new)``, a view.

    Args:
        n_layers: Layers of the model.
        max_rows: Rows of the buffers.
    """

    def __init__(self, n_layers: int, max_rows: int) -> None:
        super().__init__(layers=[_WindowLayer(self) for _ in range(n_layers)])
        self.max_rows = int(max_rows)
        self.capacity = 0
        self.select(slice(0, 0), write=0, attend_from=0)

    def select(self, rows: slice, *, write: int, attend_from: int) -> None:
        """Set the rows and columns of the next forward pass."""
        self.rows, self.write, self.attend_from = rows, int(write), int(attend_from)

    def buffers(self) -> list[torch.Tensor]:
        """The allocated key and value buffers of every layer."""
        return [t for layer in self.layers if layer.is_initialized
                for t in (layer.keys, layer.values)]

    def move(self, n: int, low: int, end: int, new_end: int, capacity: int) -> None:
        """Move the columns ``[low, end)`` of rows ``0..n-1`` to end at ``new_end``, in buffers of
        ``capacity`` columns (reallocated when that changes)."""
        width = end - low
        for layer in self.layers:
            if not layer.is_initialized:
                continue
            for name in ("keys", "values"):
                old = getattr(layer, name)
                window = old[:n, :, low:end]
                if capacity != old.shape[2]:
                    new = old.new_zeros((*old.shape[:2], capacity, old.shape[3]))
                    new[:n, :, new_end - width : new_end] = window
                    setattr(layer, name, new)
                elif new_end != end and n:
                    old[:n, :, new_end - width : new_end] = window.clone()
        self.capacity = capacity

    def gather_rows(self, index: torch.Tensor, low: int, end: int) -> None:
        """Put rows ``index`` (their columns ``[low, end)``) in slots ``0..len(index)-1``."""
        for layer in self.layers:
            if layer.is_initialized:
                for t in (layer.keys, layer.values):
                    t[: len(index), :, low:end] = t[index, :, low:end]


class PrefixStore:
    """Keys/values of recently prefilled prompts, to copy a new prompt's shared head from.

    Entries are whole prompts (token ids -> ``[layers, 2, heads, length, dim]``), evicted least
    recently used first once they hold more than ``max_bytes``; a hit refreshes its entry, so the
    prompt heads in use stay. A lookup compares the new prompt with every entry.

    Args:
        max_bytes: Memory of the entries (0 disables the store).
    """

    def __init__(self, max_bytes: float) -> None:
        self.max_bytes = float(max_bytes)
        self.entries: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self.bytes = 0

    def copy_prefix(self, ids: list[int], cache: WindowCache, slot: int, base: int) -> int:
        """Copy the longest stored head of ``ids`` (at most ``len(ids) - 1`` tokens, at least
        :data:`MIN_PREFIX_TOKENS`) into row ``slot`` at column ``base``; return its length."""
        best, best_key = 0, None
        for key in self.entries:
            shared = _common_prefix(key, ids, len(ids) - 1)
            if shared > best:
                best, best_key = shared, key
        if best < MIN_PREFIX_TOKENS or best_key is None:
            return 0
        self.entries.move_to_end(best_key)
        kv = self.entries[best_key]
        for layer, (keys, values) in zip(cache.layers, kv, strict=True):
            layer.keys[slot, :, base : base + best] = keys[:, :best]
            layer.values[slot, :, base : base + best] = values[:, :best]
        return best

    def add(self, ids: list[int], cache: WindowCache, slot: int, base: int) -> None:
        """Store the prompt ``ids`` just prefilled in row ``slot`` from column ``base``."""
        key = tuple(ids)
        if self.max_bytes <= 0 or key in self.entries:
            return
        kv = torch.stack([
            torch.stack([layer.keys[slot, :, base : base + len(ids)],
                         layer.values[slot, :, base : base + len(ids)]])
            for layer in cache.layers
        ])
        size = kv.numel() * kv.element_size()
        if size > self.max_bytes:
            return
        self.entries[key] = kv
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# ------------------------------------------------------------------------------ sampling
_M32 = 0xFFFFFFFF
_SEED_SALT = 0x2545F491
_STEP_SALT = 0x9E3779B9
_VOCAB_SALT = 0x85EBCA6B


def _mix32(x: Any) -> Any:
    """A 32-bit integer hash (multiply-xorshift, constants of C. Wellons' "lowbias32" family).

    Works on Python ints and int64 tensors alike; every product stays below ``2**63``.
    """
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & _M32
    return x ^ (x >> 15)


def _stream(seed: int) -> int:
    """The 32-bit key of a request's random stream, from its 64-bit seed."""
    seed &= (1 << 64) - 1
    return _mix32(_mix32(seed & _M32) ^ _mix32((seed >> 32) ^ _SEED_SALT))


def _penalise(
    logits: torch.Tensor,
    seen: torch.Tensor,
    in_completion: torch.Tensor,
    repetition: torch.Tensor,
    presence: torch.Tensor,
) -> torch.Tensor:
    """Apply the per-row repetition and presence penalties (steps 1-2 of the module docstring)
    in place, touching only the tokens a row has seen."""
    rows, tokens = seen.nonzero(as_tuple=True)
    z = logits[rows, tokens]
    r = repetition[rows]
    z = torch.where(z > 0, z / r, z * r) - presence[rows] * in_completion[rows, tokens]
    logits[rows, tokens] = z
    return logits


def _choose(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    keys: torch.Tensor,
    token_hash: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row (step 3 of the module docstring); return the tokens and their
    log-probabilities.

    ``keys`` holds each row's 32-bit key for this step and ``token_hash`` a hash of every token
    id: the Gumbel noise of token ``t`` in row ``i`` is a function of ``keys[i]`` and ``t`` only.
    Rows are filtered to the widest top-k of the batch and then each to its own ``top_k`` and
    ``top_p``, so a row's candidates, distribution and draw do not depend on the other rows.
    """
    greedy = temperature == 0
    any_greedy = bool(greedy.any())
    if any_greedy:
        tokens = logits.argmax(-1)
        logprobs = logits.gather(1, tokens.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, -1)
        if bool(greedy.all()):
            return tokens, logprobs
    vocab = logits.shape[1]
    k = torch.where((top_k > 0) & (top_k < vocab), top_k, vocab)
    widest = int(k[~greedy].max())
    if widest < vocab:  # the order of z / T is that of z
        values, order = logits.topk(widest, dim=-1)
    else:
        values, order = logits.sort(-1, descending=True)
    values = values / torch.where(greedy, 1.0, temperature).unsqueeze(1)
    ranks = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
    keep = ranks < k.unsqueeze(1)
    probs = torch.softmax(values.masked_fill(~keep, float("-inf")), -1)
    keep &= (probs.cumsum(-1) - probs) < top_p.unsqueeze(1)
    dist = torch.log_softmax(values.masked_fill(~keep, float("-inf")), -1)
    bits = _mix32(keys.unsqueeze(1) ^ token_hash[order])
    uniform = (bits.double() + 0.5) / 2.0**32
    gumbel = -torch.log(-torch.log(uniform))
    pick = (dist.double() + gumbel).argmax(-1, keepdim=True)
    sampled = order.gather(1, pick).squeeze(1)
    sampled_logprob = dist.gather(1, pick).squeeze(1)
    if not any_greedy:
        return sampled, sampled_logprob
    return (torch.where(greedy, tokens, sampled),
            torch.where(greedy, logprobs, sampled_logprob))
