"""A trained generation-parameter policy at inference: checkpoint in, ``GenerationParams`` out.

:func:`load_inference_policy` rebuilds, from a :class:`~spgg_env.agents.genparam_policy.
GenParamLearner` checkpoint alone, each agent's policy network, the state encoder (the frozen
embedder named in the checkpoint, its dtype and ``max_length``; ``n_agents``; the env's
``max_tokens``) and the :class:`~spgg_env.agents.genparam_policy.ParamRanges`, and returns a
deterministic policy::

    policy = load_inference_policy("leaderboard/policies/mmlu/spgg-po/checkpoint.pt")
    params = policy(task_text, visible, position, n_agents)   # -> GenerationParams

It computes the state exactly as training did (formula in :mod:`~spgg_env.agents.genparam_policy`)
``s = [E(task), onehot(position), n_visible / (n - 1), log(1 + T_vis) / log(1 + n * max_tokens),
E(visible)]`` with ``task_text`` the problem statement (``Problem.question``) and ``visible``
the texts of the contributions the agent sees, and takes the **mean action** ``z = mu(h(s))``
(no sampling), mapped through the bounded map ``low + (high - low) * sigmoid(z)`` (``top_k`` and
``max_new_tokens`` rounded). The same state always gives the same parameters.

:meth:`InferencePolicy.describe` identifies the policy in result files: the checkpoint's path
and SHA-256, and what it was trained for (task, split, observation, mechanism, agents,
iterations, embedder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.genparam_policy import (
    PARAM_NAMES,
    GenParamConfig,
    GenParamPolicy,
    ParamRanges,
    StateEncoder,
    TextEmbedder,
)
from spgg_env.models import token_counter
from spgg_env.provenance import file_sha256

#: The ``inference`` block's format tag, written by ``GenParamLearner.inference_spec``.
CHECKPOINT_FORMAT = "spgg-genparam/1"


class InferencePolicy:
    """Deterministic generation parameters from a trained checkpoint (build it with
    :func:`load_inference_policy`).

    Attributes:
        spec: The checkpoint's ``inference`` block (task, split, observation, mechanism,
            n_agents, max_tokens, state_dim, ranges, embedder).
        path: The checkpoint file, as given.
        sha256: SHA-256 of the checkpoint file.
        iterations: PPO iterations the checkpoint was trained for.
    """

    def __init__(
        self,
        policies: nn.ModuleList,
        encoder: StateEncoder,
        ranges: ParamRanges,
        spec: dict[str, Any],
        *,
        path: str,
        sha256: str,
        iterations: int,
    ) -> None:
        self.policies = policies.eval().requires_grad_(False)
        self.encoder = encoder
        self.ranges = ranges
        self.spec = spec
        self.path = path
        self.sha256 = sha256
        self.iterations = iterations

    @property
    def n_agents(self) -> int:
        """The number of agents the checkpoint was trained for."""
        return int(self.spec["n_agents"])

    def expect(self, **facts: Any) -> None:
        """Refuse a use the checkpoint was not trained for.

        Args:
            facts: Any of ``task``, ``observation``, ``mechanism``, ``n_agents``; ``None``
                values are not checked.

        Raises:
            ValueError: Naming each fact that differs from the checkpoint's and how to fix it.
        """
        wrong = [
            f"{key}={value!r} but the checkpoint was trained with {key}={self.spec.get(key)!r}"
            for key, value in facts.items()
            if value is not None and value != self.spec.get(key)
        ]
        if wrong:
            raise ValueError(
                f"policy checkpoint {self.path!r} does not fit this use: " + "; ".join(wrong)
                + ". Train a checkpoint for this setting (spgg train genparam --task ... "
                "--agents ... --observation ...) or change the method's options"
            )

    @torch.no_grad()
    def mean_z(self, task_texts: Sequence[str], visible: Sequence[Sequence[str]],
               position: int) -> torch.Tensor:
        """The policy's mean pre-activations ``mu(h(s))`` for a batch of states, ``(B, 6)``."""
        states = self.encoder.encode(list(task_texts), [position] * len(task_texts),
                                     [list(v) for v in visible])
        dist, _ = self.policies[position](states)
        return dist.mean

    def __call__(self, task_text: str, visible: Sequence[str], position: int,
                 n_agents: int) -> GenerationParams:
        """The mean-action parameters of the agent at ``position``.

        Args:
            task_text: The problem statement (``Problem.question``), as in training.
            visible: Texts of the contributions this agent sees (empty when none).
            position: The agent's place in the order, ``0 .. n_agents - 1``.
            n_agents: The group size; must be the checkpoint's.

        Raises:
            ValueError: If ``n_agents`` or ``position`` does not fit the checkpoint.
        """
        self.expect(n_agents=n_agents)
        if isinstance(position, bool) or position not in range(self.n_agents):
            raise ValueError(f"position must be an int in [0, {self.n_agents}), got {position!r}")
        if isinstance(visible, str):
            raise TypeError("visible must be a sequence of contribution texts, not one str")
        return self.ranges.to_params(self.mean_z([task_text], [visible], position))[0]

    def describe(self) -> dict[str, Any]:
        """Identity of the policy for result files: path, SHA-256 and training setting."""
        keys = ("task", "split", "train_problems", "observation", "mechanism", "n_agents",
                "max_tokens", "embedder")
        return {"checkpoint": self.path, "sha256": self.sha256, "iterations": self.iterations,
                **{key: self.spec.get(key) for key in keys}}


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"policy checkpoint {str(path)!r} does not exist; train one with "
            f"`spgg train genparam --out DIR` (it writes DIR/checkpoint.pt)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(
            f"cannot read policy checkpoint {str(path)!r} ({type(error).__name__}: {error}); "
            "give a checkpoint.pt written by `spgg train genparam`"
        ) from error
    if not isinstance(state, dict) or "policies" not in state:
        raise ValueError(
            f"{str(path)!r} is not a generation-parameter checkpoint (no 'policies'); give a "
            "checkpoint.pt written by `spgg train genparam`"
        )
    spec = state.get("inference")
    if not isinstance(spec, dict):
        raise ValueError(
            f"policy checkpoint {str(path)!r} lacks its 'inference' block (the state encoder's "
            "embedder, n_agents, max_tokens and ranges): it was written by an older version. "
            "Rerun its `spgg train genparam` command with the same --out to rewrite it"
        )
    if spec.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"policy checkpoint {str(path)!r} has format {spec.get('format')!r}; this version "
            f"reads {CHECKPOINT_FORMAT!r}"
        )
    return state


def _embedder(spec: dict[str, Any], path: Path, device: str) -> TextEmbedder:
    source = spec.get("embedder")
    if not source:
        raise ValueError(
            f"policy checkpoint {str(path)!r} was trained with an embedder object whose source "
            "is unknown, so it cannot be rebuilt; pass embedder= to load_inference_policy"
        )
    from transformers import AutoModel, AutoTokenizer

    name = str(source["model"])
    if name == "embedded":
        from spgg_env.embedded_model import embedded_model_path

        name = str(embedded_model_path())
    # loaded in the training dtype (not cast afterwards: a cast also rounds the rotary buffers)
    model = AutoModel.from_pretrained(name, dtype=getattr(torch, source.get("dtype", "float32")))
    tokenizer = AutoTokenizer.from_pretrained(name)
    return TextEmbedder(model.to(device), tokenizer, max_length=int(source["max_length"]))


def export_policy(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the inference part of a training checkpoint (networks, ``inference`` block, config,
    iteration, history; no optimiser or generator state) to ``out``: about a third of the size,
    and what :func:`load_inference_policy` reads."""
    state = _read(Path(checkpoint))
    keep = ("inference", "policies", "config", "iteration", "history")
    out = Path(out)
    torch.save({key: state[key] for key in keep if key in state}, out)
    return out


def load_inference_policy(
    path: str | Path,
    *,
    embedder: Any = None,
    device: str = "cpu",
    **expected: Any,
) -> InferencePolicy:
    """Rebuild a trained policy from its checkpoint for inference (see the module docstring).

    Args:
        path: A ``checkpoint.pt`` written by ``GenParamLearner.save`` / ``spgg train genparam``.
        embedder: A ready embedder to use instead of the one the checkpoint names.
        device: Where the embedder runs (the small policy networks run on the CPU).
        expected: Facts to check now (``task``, ``observation``, ``mechanism``,
            ``n_agents``; see :meth:`InferencePolicy.expect`).

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the file is not a readable checkpoint of this format, its embedder
            cannot be rebuilt or gives another state size, or ``expected`` differs.
    """
    path = Path(path)
    state = _read(path)
    spec = dict(state["inference"])
    ranges_spec = dict(spec["ranges"])
    ranges = ParamRanges(
        **{name: tuple(ranges_spec[name]) for name in PARAM_NAMES},
        initial=dict(ranges_spec["initial"]),
    )
    config = GenParamConfig(**state.get("config", {}))
    embedder = embedder if embedder is not None else _embedder(spec, path, device)
    encoder = StateEncoder(embedder, int(spec["n_agents"]), int(spec["max_tokens"]),
                           token_counter(embedder.tokenizer))
    if encoder.dim != int(spec["state_dim"]):
        raise ValueError(
            f"policy checkpoint {str(path)!r} needs states of size {spec['state_dim']} but the "
            f"embedder {spec.get('embedder')!r} gives {encoder.dim}: use the model it was "
            "trained with"
        )
    policies = nn.ModuleList(
        GenParamPolicy(encoder.dim, ranges, config) for _ in range(int(spec["n_agents"]))
    )
    try:
        policies.load_state_dict(state["policies"])
    except RuntimeError as error:
        raise ValueError(
            f"policy checkpoint {str(path)!r}: its networks do not match its own description "
            f"({error})"
        ) from error
    policy = InferencePolicy(
        policies, encoder, ranges, spec, path=str(path), sha256=file_sha256(path),
        iterations=int(state.get("iteration", 0)),
    )
    policy.expect(**expected)
    return policy

