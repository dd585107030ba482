"""An LLM agent: observation in, contribution out, through a backend with its own parameters.

The environment has already rendered the task and the visible predecessors' contributions into
``observation["prompt"]``. The agent wraps that text into a chat prompt: its own system prompt
(its role), formatted with ``{agent_number}`` (1-based position) and ``{n_agents}`` when
present, then its few-shot exemplar turns if any, then the observation as the user message.
It applies its :class:`~spgg_env.agents.backend.GenerationParams` and returns the completion
text as its contribution; a failed generation becomes the empty contribution (which the task
scores 0) and the failure stays in the returned :class:`~spgg_env.agents.backend.Generation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spgg_env.agents.backend import Backend, ChatPrompt, GenerationParams


@dataclass
class LLMAgent:
    """One agent of an ensemble.

    Attributes:
        name: Label in transcripts (e.g. ``"solver"``).
        backend: The backend that generates for it (may be shared with other agents).
        params: Its generation parameters.
        system_prompt: Its role; ``{agent_number}`` and ``{n_agents}`` are filled in. Empty
            means no system message (the model's chat template default applies).
        n_agents: Number of agents in the game, for the system prompt.
        exemplars: Few-shot chat turns shown between the system prompt and the observation
            (``user``/``assistant`` messages; see :meth:`Ensemble.prepare
            <spgg_env.agents.ensemble.Ensemble.prepare>`).
    """

    name: str
    backend: Backend
    params: GenerationParams = field(default_factory=GenerationParams)
    system_prompt: str = ""
    n_agents: int = 3
    exemplars: tuple[dict[str, str], ...] = ()

    def chat(self, observation: Mapping[str, Any]) -> ChatPrompt:
        """The chat prompt for an observation (``{"prompt", "position", ...}``)."""
        if "prompt" not in observation:
            raise KeyError(f"observation has no 'prompt' key: {sorted(observation)}")
        messages: ChatPrompt = []
        if self.system_prompt:
            system = self.system_prompt.replace(
                "{agent_number}", str(int(observation.get("position", 0)) + 1)
            ).replace("{n_agents}", str(self.n_agents))
            messages.append({"role": "system", "content": system})
        messages.extend(dict(turn) for turn in self.exemplars)
        messages.append({"role": "user", "content": str(observation["prompt"])})
        return messages

    def act(self, observation: Mapping[str, Any], *, seed: int | None = None) -> str:
        """The contribution for one observation, in one backend call ("" when it failed).

        In a game, the :class:`~spgg_env.agents.ensemble.Ensemble` acts for its agents through
        the episode engine instead, which batches many episodes' calls."""
        (generation,) = self.backend.generate([self.chat(observation)], [self.params], seed=seed)
        return generation.text if generation.finish_reason != "error" else ""
