"""Where the judge's numbers come from: a local ``transformers`` model, or a server.

:class:`TransformersScorer` rates all summaries of one article with three levels of reuse
(the pieces of :mod:`spgg_env.judge.prompt`):

1. the prefix (system message, criteria, article) runs once per article and its KV cache
   (a ``transformers.DynamicCache``) is kept;
2. each summary's body runs once on top of that cache (batch 1, so no padding);
3. the dimension questions run as one batch of ``len(dimensions)`` rows on a copy of the
   prefix+body cache, right-padded to one fixed width (a real token never attends to a pad,
   and every row sits at the same positions it would alone).

Every number therefore comes from the same sequence of tensor shapes whatever the other pairs
in a call are: scores do not depend on how pairs are batched or ordered. Logits are computed
only where they are read (the last real token of a question row).

With ``features=True`` :meth:`TransformersScorer.rate` also returns the hidden states the
learned head (:mod:`spgg_env.judge.head`) reads: per layer, the mean over the summary's tokens
and the state at the end of the body, and the state at the end of each question.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env.judge.prompt import (
    AFTER_SUMMARY,
    BEFORE_DOCUMENT,
    BEFORE_SUMMARY,
    SCORE_TOKENS,
    SYSTEM,
    RatingPrompt,
    question,
)

#: Hidden-state layers the features keep: indices into ``hidden_states`` (0 = embeddings).
FEATURE_LAYERS: tuple[int, ...] = (6, 12, 18, 24, 30)


def model_identity(model: Any, revision: str | None = None) -> str:
    """``"<model name>@<revision>"``, the model part of every cache key (loads nothing)."""
    if isinstance(model, str | os.PathLike):
        name = str(model)
        if name == "embedded":
            from spgg_env.embedded_model import MODEL_NAME

            name = MODEL_NAME
    else:
        name = getattr(model, "name_or_path", "") or type(model).__name__
    return f"{name}@{revision or 'default'}"


def adapter_digest(adapter: str | os.PathLike[str]) -> str:
    """SHA-256 of a LoRA adapter folder's weights file (what the cache identity records)."""
    from spgg_env.provenance import file_sha256

    folder = Path(adapter)
    weights = [folder / name for name in ("adapter_model.safetensors", "adapter_model.bin")]
    found = [path for path in weights if path.is_file()]
    if not (folder / "adapter_config.json").is_file() or not found:
        raise FileNotFoundError(
            f"{folder} is not a LoRA adapter folder: it needs adapter_config.json and "
            "adapter_model.safetensors (what peft's save_pretrained writes; "
            "examples/train_judge.py lora --adapter-out makes one)"
        )
    return file_sha256(found[0])


def merged_adapter(model: Any, adapter: str | os.PathLike[str]) -> Any:
    """``model`` with the LoRA adapter in ``adapter`` merged into its weights (eval mode)."""
    from peft import PeftModel

    adapter_digest(adapter)  # a clear error for a folder that holds no adapter
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


@dataclass
class Rating:
    """What the model says about one summary.

    Attributes:
        probs: Per dimension, the probabilities of the tokens "1".."5" (unnormalised).
        features: With ``features=True``: ``body_mean`` and ``body_last`` (layers x hidden)
            and ``question_last`` (dimensions x layers x hidden), float32.
    """

    probs: list[list[float]]
    features: dict[str, np.ndarray] | None = None


class TransformersScorer:
    """Score-token probabilities (and hidden states) under a local ``transformers`` model.

    Args:
        model: Hub id, folder, ``"embedded"``, or a loaded causal LM (then give ``tokenizer``).
        tokenizer: The tokenizer of a loaded ``model``.
        revision: Recorded in the cache identity.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        dtype: ``"auto"`` (float32 on a CPU, bfloat16 on CUDA), ``"float32"``, ``"bfloat16"``.
        feature_layers: Layers the features keep (indices into ``hidden_states``; those beyond
            the model's depth are dropped).
        depth: Run only the first ``depth`` blocks (features only: the score tokens need the
            whole model). A head that reads early layers costs ``depth / layers`` of the model.
            The model's block list is cut in place.
        adapter: A ``peft`` LoRA adapter folder (``save_pretrained``'s output) merged into the
            model's weights after loading; its weights' SHA-256 joins the identity.
    """

    def __init__(
        self,
        model: Any = "embedded",
        tokenizer: Any = None,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        feature_layers: Sequence[int] = FEATURE_LAYERS,
        depth: int | None = None,
        adapter: str | os.PathLike[str] | None = None,
    ) -> None:
        import torch

        from spgg_env.models import load_model_and_tokenizer, resolve_device, resolve_dtype

        self.identity = model_identity(model, revision)
        if isinstance(model, str | os.PathLike):
            self.device = resolve_device(device)
            # bf16 on a CPU without native support is several times slower than fp32 here
            # (docs/judge.md); "auto" keeps fp32 on every CPU.
            on_cpu_auto = dtype == "auto" and self.device.type == "cpu"
            torch_dtype = torch.float32 if on_cpu_auto else resolve_dtype(dtype, self.device)
            self.model, self.tokenizer, _ = load_model_and_tokenizer(
                model, self.device, torch_dtype
            )
        else:
            if tokenizer is None:
                raise ValueError("a loaded model needs its tokenizer: pass tokenizer=")
            self.model, self.tokenizer = model.eval(), tokenizer
            self.device = next(model.parameters()).device
        if adapter is not None:
            self.model = merged_adapter(self.model, adapter)
            self.identity += f"+lora:{adapter_digest(adapter)[:16]}"
        self.dtype = next(self.model.parameters()).dtype
        self._torch = torch
        self.full_depth = self.model.config.num_hidden_layers
        self.depth = self.full_depth if depth is None else int(depth)
        if not 1 <= self.depth <= self.full_depth:
            raise ValueError(f"depth must be in [1, {self.full_depth}], got {depth!r}")
        if self.depth < self.full_depth:
            self.model.model.layers = self.model.model.layers[: self.depth]
            # transformers reports the last hidden state after the final norm: without the norm
            # the cut model's last state equals the full model's state at that depth
            self.model.model.norm = torch.nn.Identity()
        self.feature_layers = tuple(layer for layer in feature_layers if 0 <= layer <= self.depth)
        self.token_ids = self._score_token_ids()
        self.head_text, self.tail_text = self._chat_frame()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.tokenizer.eos_token_id or 0))
        # transformers renamed `past_key_values` to `cache` (the old name warns from 5.x on)
        forward = inspect.signature(self.model.model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward else "past_key_values"

    # ------------------------------------------------------------ tokens
    def _score_token_ids(self) -> list[list[int]]:
        """For each score digit, the ids of the tokens that spell it (with or without a space)."""
        ids = []
        for digit in SCORE_TOKENS:
            found = set()
            for text in (digit, " " + digit):
                encoded = self.tokenizer.encode(text, add_special_tokens=False)
                if encoded and self.tokenizer.decode(encoded[-1:]).strip() == digit:
                    found.add(encoded[-1])
            if not found:
                raise ValueError(f"the tokenizer has no single token for the score {digit!r}")
            ids.append(sorted(found))
        return ids

    def _chat_frame(self) -> tuple[str, str]:
        """The chat template's text before and after the user message (system turn included)."""
        if not getattr(self.tokenizer, "chat_template", None):
            return f"{SYSTEM}\n\n", "\nScore: "
        marker = "\x00USER\x00"
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": marker}]
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        head, tail = text.split(marker)
        return head, tail

    def _encode(self, text: str, data: bool = False) -> list[int]:
        """Token ids of ``text``; data is read with special tokens split into plain text."""
        return self.tokenizer(
            text, add_special_tokens=False, split_special_tokens=data, verbose=False
        )["input_ids"]

    def prefix_ids(self, document: str) -> list[int]:
        """Tokens of the article's prefix (the same for all its summaries and dimensions)."""
        return (
            self._encode(self.head_text + BEFORE_DOCUMENT)
            + self._encode(document, data=True)
            + self._encode(BEFORE_SUMMARY)
        )

    def body_ids(self, summary: str) -> list[int]:
        """Tokens of a summary's body (the summary and its closing tag)."""
        return self._encode(summary, data=True) + self._encode(AFTER_SUMMARY)

    def question_ids(self, dimension: str) -> list[int]:
        """Tokens of one dimension's question, chat turn closed and the answer opened."""
        return self._encode(question(dimension) + self.tail_text)

    # ------------------------------------------------------------ scoring
    def distributions(self, prompts: Sequence[RatingPrompt]) -> list[list[float]]:
        """Probabilities of the tokens "1".."5" after each prompt, in order.

        Prompts are grouped by document and summary, so each article's prefix and each
        summary's body run once.
        """
        groups: dict[str, dict[str, list[int]]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt.document, {}).setdefault(prompt.summary, []).append(i)
        out: list[list[float]] = [[] for _ in prompts]
        for document, by_summary in groups.items():
            dims = sorted({prompts[i].dimension for idx in by_summary.values() for i in idx})
            ratings = self.rate(document, list(by_summary), dims)
            for rating, indices in zip(ratings, by_summary.values(), strict=True):
                for i in indices:
                    out[i] = rating.probs[dims.index(prompts[i].dimension)]
        return out

    def rate(
        self,
        document: str,
        summaries: Sequence[str],
        dimensions: Sequence[str],
        *,
        features: bool = False,
    ) -> list[Rating]:
        """Rate every summary of one (cut, neutralised) document on ``dimensions``.

        Args:
            document: The article, as :func:`~spgg_env.judge.prompt.rating_prompt` gives it.
            summaries: The summaries, likewise.
            dimensions: Dimensions to ask about (may be empty when only features are wanted).
            features: Also return hidden-state features (see :class:`Rating`).
        """
        from transformers import DynamicCache

        torch = self._torch
        if dimensions and self.depth < self.full_depth:
            raise ValueError(f"a scorer cut to {self.depth} blocks gives features, not scores")
        questions = [self.question_ids(d) for d in dimensions]
        width = max((len(q) for q in questions), default=0)
        q_ids = torch.tensor(
            [q + [self.pad_id] * (width - len(q)) for q in questions], device=self.device
        ).reshape(len(questions), width)
        q_last = torch.tensor([len(q) - 1 for q in questions], device=self.device)
        ratings = []
        with torch.inference_mode():
            prefix = torch.tensor([self.prefix_ids(document)], device=self.device)
            cache = DynamicCache(config=self.model.config)
            self.model.model(input_ids=prefix, **{self._cache_kw: cache}, use_cache=True)
            prefix_len = prefix.shape[1]
            for summary in summaries:
                body = torch.tensor([self.body_ids(summary)], device=self.device)
                out = self.model.model(
                    input_ids=body,
                    **{self._cache_kw: cache},
                    use_cache=True,
                    output_hidden_states=features,
                )
                rating = Rating(probs=[])
                if features:
                    states = self._layers(out)
                    rating.features = {
                        "body_mean": states[:, 0].mean(dim=1).float().cpu().numpy(),
                        "body_last": states[:, 0, -1].float().cpu().numpy(),
                    }
                if questions:
                    rows = copy.deepcopy(cache)
                    rows.batch_repeat_interleave(len(questions))
                    q_out = self.model.model(
                        input_ids=q_ids,
                        **{self._cache_kw: rows},
                        use_cache=True,
                        output_hidden_states=features,
                    )
                    picked = torch.arange(len(questions), device=self.device)
                    last = q_out.last_hidden_state[picked, q_last]
                    probs = torch.softmax(self.model.lm_head(last).float(), dim=-1)
                    rating.probs = [
                        [float(probs[r, ids].sum()) for ids in self.token_ids]
                        for r in range(len(questions))
                    ]
                    if features:
                        states = self._layers(q_out)[:, picked, q_last]  # layers x rows x H
                        rating.features["question_last"] = (
                            states.transpose(0, 1).float().cpu().numpy()
                        )
                cache.crop(prefix_len - cache.get_seq_length())  # back to the prefix
                ratings.append(rating)
        return ratings

    def _layers(self, out: Any) -> Any:
        """The kept layers' hidden states, stacked: layers x batch x positions x hidden."""
        return self._torch.stack([out.hidden_states[layer] for layer in self.feature_layers])


class OpenAIScorer:
    """Score-token probabilities from an OpenAI-compatible server's ``top_logprobs``.

    One ``POST {base_url}/chat/completions`` per prompt (the system message and the user
    message of :class:`~spgg_env.judge.prompt.RatingPrompt`) with ``max_tokens=1``,
    ``temperature=0``, ``logprobs=true`` and ``top_logprobs``; the probability of a digit is the
    sum of ``exp(logprob)`` over the listed tokens that spell it (a digit outside the list
    counts 0). Works with vLLM, llama.cpp's ``llama-server`` and OpenAI.

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: The model name the server expects.
        api_key: Sent as ``Authorization: Bearer`` when given.
        top_logprobs: How many alternatives the server lists (OpenAI allows up to 20).
        timeout_s: Per-request timeout.
        transport: An ``httpx`` transport (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        top_logprobs: int = 20,
        timeout_s: float = 60.0,
        transport: Any = None,
    ) -> None:
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.top_logprobs = int(top_logprobs)
        self.identity = f"{model}@{base_url.rstrip('/')}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    def distributions(self, prompts: Sequence[RatingPrompt]) -> list[list[float]]:
        """Probabilities of the tokens "1".."5" as the first token of each reply.

        Raises:
            RuntimeError: If the server fails or sends no ``top_logprobs`` (the message names
                the URL).
        """
        return [self._one(prompt) for prompt in prompts]

    def _one(self, prompt: RatingPrompt) -> list[float]:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt.user},
            ],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        response = self._client.post(self.url, json=body)
        if response.status_code != 200:
            raise RuntimeError(
                f"POST {self.url}: HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            top = response.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise RuntimeError(
                f"POST {self.url} returned no top_logprobs ({type(error).__name__}: {error}); "
                "the judge needs a server that supports logprobs"
            ) from error
        probs = [0.0] * len(SCORE_TOKENS)
        for item in top:
            token = str(item.get("token", "")).strip()
            if token in SCORE_TOKENS:
                probs[SCORE_TOKENS.index(token)] += float(np.exp(item["logprob"]))
        return probs
