"""Ensembles of LLM agents, configured from a YAML or JSON file, a dict, or Python.

A config names the agents in their order of play; each has its own backend (model), generation
parameters and system prompt. ``defaults`` holds what agents share; an agent's own ``backend``
and ``params`` entries are merged over them key by key::

    name: smollm2-trio
    defaults:
      backend: {kind: transformers, model: embedded}
      params: {temperature: 0.7, top_p: 0.9, max_new_tokens: 128}
    agents:
      - name: solver
        system_prompt: "You are agent {agent_number} of {n_agents}: solve the task."
      - name: checker
        params: {temperature: 0.3}
      - name: finaliser
        backend: {kind: openai, base_url: "http://127.0.0.1:8000/v1", model: qwen3-8b}

``shots: k`` (top level) shows every agent ``k`` solved problems of the task's training split
before each turn, as earlier chat turns (the game's first-turn prompt of the exemplar, then its
worked answer in the task's format): drawn once per run seed, never from the evaluated split
(:mod:`spgg_env.tasks.exemplars`; a task without a training split is played zero-shot).

Agents whose merged backend specs are equal share one backend instance (one model in memory).
The default ensemble, :data:`DEFAULT_CONFIG`, is three SmolLM2-135M-Instruct agents (embedded,
offline) with different roles and parameters.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spgg_env.agents.backend import Backend, GenerationParams, make_backend
from spgg_env.agents.engine import Request
from spgg_env.agents.llm_agent import LLMAgent

log = logging.getLogger(__name__)

#: The default ensemble config (three embedded SmolLM2 agents).
DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"
_PARAM_NAMES = frozenset(f.name for f in fields(GenerationParams))
_AGENT_KEYS = frozenset({"name", "backend", "params", "system_prompt"})
_TOP_KEYS = frozenset({"name", "defaults", "agents", "shots"})


@dataclass(frozen=True)
class AgentConfig:
    """One agent's config after merging the defaults.

    Attributes:
        name: Label in transcripts.
        backend: Backend spec: ``kind`` (``transformers``, ``openai``) plus its arguments.
        params: :class:`GenerationParams` fields.
        system_prompt: The agent's role (``{agent_number}``, ``{n_agents}`` filled in).
    """

    name: str
    backend: Mapping[str, Any]
    params: Mapping[str, Any]
    system_prompt: str = ""


@dataclass(frozen=True)
class EnsembleConfig:
    """An ordered list of agent configs.

    Attributes:
        agents: The agents, in their order of play.
        name: Label of the ensemble.
        shots: Few-shot exemplars shown to every agent (0: none).
    """

    agents: tuple[AgentConfig, ...]
    name: str = "ensemble"
    shots: int = 0

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> EnsembleConfig:
        """Build from the mapping of a config file (see the module docstring).

        Raises:
            ValueError: On unknown keys, missing agents or bad parameters, naming ``source``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: an ensemble config must be a mapping, got {data!r:.80}")
        _check_keys(data, _TOP_KEYS, source)
        defaults = data.get("defaults") or {}
        _check_keys(defaults, {"backend", "params", "system_prompt"}, f"{source}: defaults")
        raw_agents = data.get("agents")
        if not isinstance(raw_agents, Sequence) or isinstance(raw_agents, str) or not raw_agents:
            raise ValueError(f"{source}: 'agents' must be a non-empty list, got {raw_agents!r}")
        agents = []
        for i, raw in enumerate(raw_agents):
            where = f"{source}: agents[{i}]"
            if not isinstance(raw, Mapping):
                raise ValueError(f"{where} must be a mapping, got {raw!r:.80}")
            _check_keys(raw, _AGENT_KEYS, where)
            backend = {**dict(defaults.get("backend") or {}), **dict(raw.get("backend") or {})}
            backend.setdefault("kind", "transformers")
            params = {**dict(defaults.get("params") or {}), **dict(raw.get("params") or {})}
            _check_keys(params, _PARAM_NAMES, f"{where}.params")
            try:
                GenerationParams(**params)
            except ValueError as exc:
                raise ValueError(f"{where}.params: {exc}") from exc
            agents.append(AgentConfig(
                name=str(raw.get("name", f"agent_{i}")),
                backend=backend,
                params=params,
                system_prompt=str(raw.get("system_prompt", defaults.get("system_prompt", ""))),
            ))
        shots = data.get("shots", 0)
        if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
            raise ValueError(f"{source}: 'shots' must be an integer >= 0, got {shots!r}")
        return cls(agents=tuple(agents), name=str(data.get("name", "ensemble")), shots=shots)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> EnsembleConfig:
        """Load a ``.yaml``/``.yml`` or ``.json`` file.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If it does not parse or is not a valid config.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ensemble config {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot parse ensemble config {str(path)!r}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def load(cls, config: EnsembleConfig | Mapping[str, Any] | str | os.PathLike[str] | None
             ) -> EnsembleConfig:
        """Accept a config, a mapping, a file path, or ``None`` for :data:`DEFAULT_CONFIG`."""
        if config is None:
            return cls.from_file(DEFAULT_CONFIG)
        if isinstance(config, EnsembleConfig):
            return config
        if isinstance(config, Mapping):
            return cls.from_dict(config)
        return cls.from_file(config)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that :meth:`from_dict` reads back (for ``run_meta.json``)."""
        return {
            "name": self.name,
            "shots": self.shots,
            "agents": [
                {"name": a.name, "backend": dict(a.backend), "params": dict(a.params),
                 "system_prompt": a.system_prompt}
                for a in self.agents
            ],
        }

    # -------------------------------------------------------------- overrides
    def with_overrides(
        self,
        *,
        model: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        n_agents: int | None = None,
    ) -> EnsembleConfig:
        """A copy with command-line overrides applied.

        Args:
            model: Model of every ``transformers`` agent.
            device: Device of every ``transformers`` agent.
            dtype: Dtype of every ``transformers`` agent.
            max_new_tokens: Every agent's ``max_new_tokens``.
            n_agents: Cycle or cut the agent list to this many agents.
        """
        local = {k: v for k, v in (("model", model), ("device", device), ("dtype", dtype))
                 if v is not None}
        agents = []
        for a in self.agents:
            backend = dict(a.backend)
            if backend.get("kind") == "transformers":
                backend.update(local)
            params = dict(a.params)
            if max_new_tokens is not None:
                params["max_new_tokens"] = max_new_tokens
            agents.append(AgentConfig(a.name, backend, params, a.system_prompt))
        if n_agents is not None:
            if n_agents < 1:
                raise ValueError(f"n_agents must be >= 1, got {n_agents!r}")
            agents = [copy.copy(agents[i % len(agents)]) for i in range(n_agents)]
        return EnsembleConfig.from_dict(
            {"name": self.name, "shots": self.shots, "agents": [
                {"name": a.name, "backend": a.backend, "params": a.params,
                 "system_prompt": a.system_prompt} for a in agents
            ]}
        )


@dataclass
class Ensemble:
    """Agents in their order of play, with the distinct backends they use.

    Attributes:
        agents: The agents; agent ``i`` plays position ``i`` (``agent_i`` in the env).
        config: The config it was built from (``None`` when built from Python objects).
    """

    agents: list[LLMAgent]
    config: EnsembleConfig | None = None
    backends: list[Backend] = field(init=False)
    exemplar_uids: tuple[str, ...] = field(init=False, default=())
    _prepared: tuple[Any, ...] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.agents:
            raise ValueError("an ensemble needs at least one agent")
        unique: dict[int, Backend] = {}
        for agent in self.agents:
            unique.setdefault(id(agent.backend), agent.backend)
            agent.n_agents = len(self.agents)
        self.backends = list(unique.values())

    def __len__(self) -> int:
        return len(self.agents)

    @property
    def n_agents(self) -> int:
        """Agents in the game it plays."""
        return len(self.agents)

    def prepare(self, task: Any, spec: Any, seed: int) -> None:
        """Draw the config's ``shots`` exemplars for a run (the episode runner calls this).

        Exemplars come from :func:`~spgg_env.tasks.exemplars.draw_exemplars` with a generator
        seeded ``derive_seed(seed, "exemplars")``, so a run seed gives the same exemplars on every
        worker. Each becomes two chat turns: the game's prompt for the first agent (no
        contributions yet) and the task's worked answer. A task with no problems outside the
        evaluated split is played zero-shot (logged).
        """
        shots = self.config.shots if self.config else 0
        if self._prepared == (id(task), spec, seed) or not shots:
            return
        picked, turns = exemplar_turns(task, spec, shots, seed)
        for agent in self.agents:
            agent.exemplars = tuple(turns)
        self.exemplar_uids = tuple(p.uid for p in picked)
        self._prepared = (id(task), spec, seed)

    def backend_map(self) -> dict[str, Backend]:
        """The distinct backends by key, for the episode engine (``"backend_0"``...)."""
        return {f"backend_{i}": b for i, b in enumerate(self.backends)}

    def act(self, agent: str, observations: Sequence[Mapping[str, Any]]) -> list[Request]:
        """The policy of the episode engine: agent i's chat prompt for each observation,
        with its generation parameters, for its backend to write."""
        llm = self.agents[int(agent.rsplit("_", 1)[1])]
        key = f"backend_{self.backends.index(llm.backend)}"
        return [Request(llm.chat(o), llm.params, role=llm.name, backend=key)
                for o in observations]

    def describe(self) -> dict[str, Any]:
        """Agents (name, params, system prompt, backend index) and backends, for result files."""
        index = {id(b): i for i, b in enumerate(self.backends)}
        return {
            "name": self.config.name if self.config else "ensemble",
            "shots": self.config.shots if self.config else 0,
            "exemplars": list(self.exemplar_uids),
            "agents": [
                {"name": a.name, "params": a.params.to_dict(), "system_prompt": a.system_prompt,
                 "backend": index[id(a.backend)]}
                for a in self.agents
            ],
            "backends": [b.describe() for b in self.backends],
        }


def exemplar_turns(task: Any, spec: Any, shots: int, seed: int
                   ) -> tuple[tuple[Any, ...], list[dict[str, str]]]:
    """The exemplars of a run and their chat turns (see :meth:`Ensemble.prepare`)."""
    from spgg_env.seeding import derive_seed
    from spgg_env.tasks.exemplars import draw_exemplars

    rng = np.random.default_rng(derive_seed(seed, "exemplars"))
    try:
        picked = draw_exemplars(task, shots, task.problems(spec.split), rng)
    except ValueError as exc:
        log.warning("playing zero-shot: %s", exc)
        picked = ()
    return picked, game_exemplar_chat(task, spec, picked)


def game_exemplar_chat(task: Any, spec: Any, exemplars: Any) -> list[dict[str, str]]:
    """Chat turns that show the game's agents solved problems: for each exemplar, the game's
    first-turn prompt of it (no contributions seen yet) as the user's turn, then its worked
    answer (:func:`~spgg_env.tasks.exemplars.demonstration`) as the assistant's."""
    from spgg_env import prompts
    from spgg_env.tasks.exemplars import demonstration

    turns: list[dict[str, str]] = []
    for problem in exemplars:
        turns.append({"role": "user", "content": prompts.render(
            instruction=task.instruction, question=problem.question, visible=(),
            position=0, n_agents=spec.n_agents, style=spec.prompt_style)})
        turns.append({"role": "assistant", "content": demonstration(task, problem)})
    return turns


def build_ensemble(
    config: EnsembleConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Ensemble:
    """Build the agents and their backends from a config (default: :data:`DEFAULT_CONFIG`).

    Args:
        config: A config, a mapping, a YAML/JSON path, or ``None``.
        **overrides: Passed to :meth:`EnsembleConfig.with_overrides` (``model``, ``device``,
            ``dtype``, ``max_new_tokens``, ``n_agents``).
    """
    cfg = EnsembleConfig.load(config)
    if any(v is not None for v in overrides.values()):
        cfg = cfg.with_overrides(**overrides)
    backends: dict[str, Backend] = {}
    agents = []
    for a in cfg.agents:
        key = json.dumps(dict(a.backend), sort_keys=True, default=str)
        if key not in backends:
            backends[key] = make_backend(a.backend)
        agents.append(LLMAgent(a.name, backends[key], GenerationParams(**a.params),
                               a.system_prompt, n_agents=len(cfg.agents)))
    return Ensemble(agents, cfg)


def _check_keys(data: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping, got {data!r:.80}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
