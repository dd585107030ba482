"""Trained generation-parameter policies at inference, as the trained benchmark rows use them.

A trained policy (the learners' checkpoint, written by ``spgg train genparam``) maps an agent's
state to its generation parameters::

    policy(task_text, visible_texts, position, n_agents) -> GenerationParams

``task_text`` is the problem statement (``Problem.question``, the observation's ``task``),
``visible_texts`` the contributions the agent sees (empty when none), ``position`` its place in
the order of ``n_agents``. The "trained" MAC-SPGG ensembles and ECON-learned use it.

A policy was trained in one game (:func:`policy_game`): its task, number of agents, observation,
mechanism and parameters, effort budget (``max_tokens``), token counting, prompt style. Which
problems it is evaluated on is not part of that identity: the split (a policy trained on
``train`` is evaluated on ``test``) and the task's options (where the data is read from, an
``arith`` difficulty). A trained row is refused, naming every differing field, when it would
play or score another game than the one its policy learned in (:func:`require_game`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from spgg_env.agents.backend import GenerationParams
from spgg_env.provenance import file_sha256
from spgg_env.spec import GameSpec

#: Where the policy loader lives (imported lazily: it needs torch and transformers).
POLICY_LOADER = "spgg_env.agents.genparam_inference:load_inference_policy"
#: Keys of a checkpoint's ``inference`` block that describe its game (checkpoints written
#: before the game spec existed; they counted effort in the model's own tokens).
LEGACY_GAME_KEYS = ("task", "split", "observation", "mechanism", "n_agents", "max_tokens")


class ParamsPolicy(Protocol):
    """A trained generation-parameter policy at inference (see the module docstring)."""

    def __call__(
        self, task_text: str, visible: Sequence[str], position: int, n_agents: int
    ) -> GenerationParams: ...


def check_checkpoint(path: str | Path | None) -> str | None:
    """Refuse a policy checkpoint path that does not exist (without loading anything).

    Raises:
        FileNotFoundError: Naming the path and how to fix it.
    """
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"policy checkpoint {str(path)!r} does not exist (relative paths start at the "
            f"working directory {str(Path.cwd())!r}); train one with `spgg train genparam`, "
            "run from the folder the path is relative to, or remove `policy_checkpoint` from "
            "the method options"
        )
    return str(path)


def load_params_policy(path: str | Path) -> ParamsPolicy:
    """Load a trained policy for inference (this loads its embedding model).

    Raises:
        FileNotFoundError: If the checkpoint does not exist.
        ValueError: If it is not a readable checkpoint.
    """
    check_checkpoint(path)
    module_name, function = POLICY_LOADER.split(":")
    return getattr(importlib.import_module(module_name), function)(Path(path))


def policy_game(policy: Any) -> GameSpec:
    """The game a policy was trained in.

    Read from ``policy.game`` (a spec or its mapping) when the policy has one, else rebuilt
    from the facts of its checkpoint's ``inference`` block (``policy.spec``: task, split,
    observation, mechanism, n_agents, max_tokens; effort counted in model tokens, as the
    generation-parameter learner always did).

    Raises:
        ValueError: If the policy says nothing about its game.
    """
    game = getattr(policy, "game", None)
    if game is not None:
        return GameSpec.from_dict(game, source="the policy's game")
    facts = getattr(policy, "spec", None)
    if isinstance(facts, Mapping) and isinstance(facts.get("game"), Mapping):
        return GameSpec.from_dict(facts["game"], source="the policy's game")
    if isinstance(facts, Mapping) and all(k in facts for k in LEGACY_GAME_KEYS):
        return GameSpec(**{k: facts[k] for k in LEGACY_GAME_KEYS}, token_counting="model")
    raise ValueError("the policy does not say which game it was trained in (no 'game' and no "
                     f"inference facts {list(LEGACY_GAME_KEYS)})")


def require_game(policy: Any, game: GameSpec, what: str) -> None:
    """Refuse to use ``policy`` in ``game`` unless it was trained in that game (any split and
    task options: see the module docstring).

    Raises:
        ValueError: Naming every field that differs.
    """
    trained = policy_game(policy)
    if trained.task == game.task:
        trained = trained.replace(split=game.split, task_options=game.task_options)
    game.require(trained, what=what)


def describe_policy(path: str, policy: Any | None) -> dict[str, Any]:
    """The policy's identity for result files: its checkpoint path and SHA-256 (what the
    verification checks), and what the policy says about its training."""
    described = dict(policy.describe()) if hasattr(policy, "describe") else {}
    return {**described, "checkpoint": path, "sha256": file_sha256(path)}
