"""A trained generation-parameter policy at inference: checkpoint in, ``GenerationParams`` out.

:func:`load_inference_policy` rebuilds, from a checkpoint of
:class:`~spgg_env.agents.genparam_learner.GenParamLearner` alone, the game it was trained for (a
:class:`~spgg_env.spec.GameSpec`), each agent's network, the state encoder (the frozen embedder
named in the checkpoint, its dtype and ``max_length``; the game's ``n_agents`` and
``max_tokens``) and the :class:`~spgg_env.agents.genparam_ranges.ParamRanges`, and returns a
deterministic policy::

    policy = load_inference_policy("leaderboard/policies/mmlu/spgg-po/policy.pt", game=spec)
    params = policy(task_text, visible, position, n_agents)   # -> GenerationParams
    params = policy.observation_params(observation)           # the same, from a v1 observation

It computes the state exactly as training did (:mod:`~spgg_env.agents.genparam_state`) with
``task_text`` the problem statement (``Problem.question``, the observation's ``task``) and
``visible`` the texts of the contributions the agent sees, and takes the **mean action**
``z = mu(h(s))`` (no sampling) through the bounded map. The same state always gives the same
parameters. Loaded with ``game=``, a policy trained for another game is refused, naming every
differing field (only the split may differ: a policy trained on ``train`` plays ``test``).

**Checkpoint formats.** ``spgg-genparam/2`` (this version) stores the game spec. The trained
policies of ``leaderboard/policies`` are ``spgg-genparam/1``: their ``inference`` block lists
``task``, ``split``, ``observation``, ``mechanism``, ``n_agents`` and ``max_tokens``, and they
were trained (commit 26f57c1, ``GenParamLearner.for_task``) with the mechanism's default
parameters, no task options, effort counted by the LLM's own tokenizer, the one prompt
template of that time (today's ``"default"`` style) and the env's 4000-character action cap.
:func:`legacy_game` turns those facts into the exact :class:`GameSpec`.

:meth:`InferencePolicy.describe` identifies the policy in result files: the checkpoint's path
and SHA-256, its game, and what it was trained on (split, iterations, embedder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.genparam_learner import FORMAT
from spgg_env.agents.genparam_network import GenParamNetwork
from spgg_env.agents.genparam_ranges import ParamRanges
from spgg_env.agents.genparam_state import StateEncoder, TextEmbedder, observed
from spgg_env.models import token_counter
from spgg_env.provenance import file_sha256
from spgg_env.spec import GameSpec

#: The format of the trained leaderboard policies (before game specs).
LEGACY_FORMAT = "spgg-genparam/1"
#: What :func:`export_policy` keeps of a training checkpoint.
INFERENCE_KEYS = ("format", "inference", "policies", "config", "update", "iteration", "history")


def legacy_game(inference: Mapping[str, Any]) -> GameSpec:
    """The exact game of a ``spgg-genparam/1`` checkpoint (see the module docstring).

    Raises:
        ValueError: If a stored field is missing or invalid.
    """
    try:
        stored = {key: inference[key] for key in ("task", "split", "n_agents", "observation",
                                                  "mechanism", "max_tokens")}
    except KeyError as missing:
        raise ValueError(f"a {LEGACY_FORMAT} inference block lacks {missing}") from None
    return GameSpec.from_dict(
        {**stored, "task_options": {}, "mechanism_params": {}, "token_counting": "model",
         "prompt_style": "default", "max_action_chars": 4000},
        source=f"{LEGACY_FORMAT} checkpoint")


class InferencePolicy:
    """Deterministic generation parameters from a trained checkpoint (build it with
    :func:`load_inference_policy`).

    Attributes:
        game: The game it was trained for.
        inference: The checkpoint's ``inference`` block.
        path: The checkpoint file, as given.
        sha256: SHA-256 of the checkpoint file.
        iterations: PPO updates the checkpoint was trained for.
    """

    def __init__(self, networks: nn.ModuleList, encoder: StateEncoder, ranges: ParamRanges,
                 game: GameSpec, inference: Mapping[str, Any], *, path: str, sha256: str,
                 iterations: int) -> None:
        self.networks = networks.eval().requires_grad_(False)
        self.encoder = encoder
        self.ranges = ranges
        self.game = game
        self.inference = dict(inference)
        self.path = path
        self.sha256 = sha256
        self.iterations = iterations

    @property
    def n_agents(self) -> int:
        """The number of agents the checkpoint was trained for."""
        return self.game.n_agents

    def require(self, game: GameSpec) -> None:
        """Refuse to play another game than the one trained for. The split may differ (a
        policy trained on a train split is evaluated on the test split); nothing else may.

        Raises:
            ValueError: Naming every differing field of the game spec.
        """
        self.game.require(game.replace(split=self.game.split),
                          what=f"policy checkpoint {self.path!r}")

    def expect(self, **facts: Any) -> None:
        """Refuse a use the checkpoint was not trained for (the fields of the game a caller
        knows, e.g. a benchmark method: ``task``, ``observation``, ``mechanism``,
        ``n_agents``...; ``None`` values are not checked).

        Raises:
            ValueError: Naming each fact that differs from the checkpoint's and how to fix it.
        """
        trained = self.game.to_dict()
        unknown = sorted(set(facts) - set(trained))
        if unknown:
            raise ValueError(f"unknown game field(s) {unknown}; valid: {sorted(trained)}")
        wrong = [
            f"{key}={value!r} but the checkpoint was trained with {key}={trained[key]!r}"
            for key, value in facts.items()
            if value is not None and value != trained[key]
        ]
        if wrong:
            raise ValueError(
                f"policy checkpoint {self.path!r} does not fit this use: " + "; ".join(wrong)
                + ". Train a checkpoint for this setting (spgg train genparam --task ... "
                "--n-agents ... --observation ...) or change the method's options"
            )

    @torch.no_grad()
    def mean_z(self, task_texts: Sequence[str], visible: Sequence[Sequence[str]],
               position: int) -> torch.Tensor:
        """The policy's mean pre-activations ``mu(h(s))`` for a batch of states, ``(B, 6)``."""
        states = self.encoder.encode(list(task_texts), [position] * len(task_texts),
                                     [list(v) for v in visible])
        dist, _ = self.networks[position](states)
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

    def observation_params(self, observation: Mapping[str, Any]) -> GenerationParams:
        """The mean-action parameters for a v1 observation of the game (``task``,
        ``position``, ``contributions``, ``visible``)."""
        task_text, position, visible = observed(observation)
        return self(task_text, visible, position, len(observation["visible"]))

    def describe(self) -> dict[str, Any]:
        """Identity of the policy for result files: path, SHA-256, game and training."""
        game = self.game.to_dict()
        return {"checkpoint": self.path, "sha256": self.sha256, "iterations": self.iterations,
                "format": self.inference.get("format"), "game": game,
                **{key: game[key] for key in ("task", "split", "observation", "mechanism",
                                              "n_agents", "max_tokens")},
                "train_problems": self.inference.get("train_problems"),
                "embedder": self.inference.get("embedder")}


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"policy checkpoint {str(path)!r} does not exist; train one with "
            f"`spgg train genparam --out DIR` (it writes DIR/policy.pt)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(
            f"cannot read policy checkpoint {str(path)!r} ({type(error).__name__}: {error}); "
            "give a policy.pt written by `spgg train genparam`"
        ) from error
    if not isinstance(state, dict) or "policies" not in state:
        raise ValueError(
            f"{str(path)!r} is not a generation-parameter checkpoint (no 'policies'); give a "
            "policy.pt written by `spgg train genparam`"
        )
    inference = state.get("inference")
    if not isinstance(inference, dict):
        raise ValueError(
            f"policy checkpoint {str(path)!r} lacks its 'inference' block (the game, the state "
            "encoder's embedder and the ranges): it was written by an older version; retrain it "
            "with `spgg train genparam`"
        )
    if inference.get("format") not in (LEGACY_FORMAT, FORMAT):
        raise ValueError(
            f"policy checkpoint {str(path)!r} has format {inference.get('format')!r}; this "
            f"version reads {FORMAT!r} and {LEGACY_FORMAT!r}"
        )
    return state


def export_policy(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the inference part of a training checkpoint (networks, ``inference`` block, config,
    update count, history; no optimiser state) to ``out``: about a third of the size, and what
    :func:`load_inference_policy` reads."""
    state = _read(Path(checkpoint))
    out = Path(out)
    torch.save({key: state[key] for key in INFERENCE_KEYS if key in state}, out)
    return out


def load_inference_policy(
    path: str | Path,
    *,
    game: GameSpec | None = None,
    embedder: Any = None,
    device: str = "cpu",
    **expected: Any,
) -> InferencePolicy:
    """Rebuild a trained policy from its checkpoint for inference (see the module docstring).

    Args:
        path: A ``policy.pt`` or ``checkpoint.pt`` written by ``spgg train genparam``.
        game: The game it will play; a policy trained for another is refused.
        embedder: A ready embedder to use instead of the one the checkpoint names.
        device: Where the embedder runs (the small networks run on the CPU).
        expected: Single game fields to check now (``task``, ``observation``, ``mechanism``,
            ``n_agents``; see :meth:`InferencePolicy.expect`).

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the file is not a readable checkpoint of a known format, its embedder
            cannot be rebuilt or gives another state size, or it was trained for another game.
    """
    path = Path(path)
    state = _read(path)
    inference = dict(state["inference"])
    if inference["format"] == LEGACY_FORMAT:
        trained = legacy_game(inference)
        config = state.get("config", {})
        network = {"hidden": config.get("hidden", 64),
                   "init_log_std": config.get("init_log_std", -0.5)}
        iterations = int(state.get("iteration", 0))
    else:
        trained = GameSpec.from_dict(inference["game"], source=f"policy checkpoint {str(path)!r}")
        network = inference["network"]
        iterations = int(state.get("update", 0))
    ranges = ParamRanges.from_dict(inference["ranges"])
    if embedder is None:
        if not inference.get("embedder"):
            raise ValueError(
                f"policy checkpoint {str(path)!r} was trained with an embedder object whose "
                "source is unknown, so it cannot be rebuilt; pass embedder= to "
                "load_inference_policy")
        embedder = TextEmbedder.from_source(inference["embedder"], device)
    encoder = StateEncoder(embedder, trained.n_agents, trained.max_tokens,
                           token_counter(embedder.tokenizer))
    if encoder.dim != int(inference["state_dim"]):
        raise ValueError(
            f"policy checkpoint {str(path)!r} needs states of size {inference['state_dim']} but "
            f"the embedder {inference.get('embedder')!r} gives {encoder.dim}: use the model it "
            "was trained with"
        )
    networks = nn.ModuleList(
        GenParamNetwork(encoder.dim, ranges, int(network["hidden"]),
                        float(network["init_log_std"]))
        for _ in range(trained.n_agents)
    )
    try:
        networks.load_state_dict(state["policies"])
    except RuntimeError as error:
        raise ValueError(
            f"policy checkpoint {str(path)!r}: its networks do not match its own description "
            f"({error})"
        ) from error
    policy = InferencePolicy(networks, encoder, ranges, trained, inference, path=str(path),
                             sha256=file_sha256(path), iterations=iterations)
    if game is not None:
        policy.require(game)
    policy.expect(**expected)
    return policy
