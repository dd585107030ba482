"""The bounded map of the generation-parameter learner: six unbounded numbers to the six
generation parameters.

The policy network outputs pre-activations ``z`` (one per parameter, in :data:`PARAM_NAMES`
order); parameter ``j`` is

    p_j = low_j + (high_j - low_j) * sigmoid(z_j)

with ``top_k`` and ``max_new_tokens`` rounded. The map is fixed, so PPO's probability ratios are
taken on ``z`` and need no Jacobian. :class:`ParamRanges` holds each range and the parameters the
untrained policy starts at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from spgg_env.agents.backend import GenerationParams

PARAM_NAMES = tuple(f.name for f in fields(GenerationParams))
INTEGER_PARAMS = ("top_k", "max_new_tokens")
#: The shortest completion the learner may choose (the low end of ``max_new_tokens``).
MIN_NEW_TOKENS = 16


@dataclass(frozen=True)
class ParamRanges:
    """The configured range ``(low, high)`` of each generation parameter, and where it starts.

    ``initial`` holds the parameters the untrained policy's mean maps to (default: the middle
    of each range would be arbitrary, so a moderate decoding setup is used).
    """

    temperature: tuple[float, float] = (0.05, 1.5)
    top_p: tuple[float, float] = (0.5, 1.0)
    top_k: tuple[float, float] = (1, 100)
    max_new_tokens: tuple[float, float] = (MIN_NEW_TOKENS, 512)
    repetition_penalty: tuple[float, float] = (1.0, 1.5)
    presence_penalty: tuple[float, float] = (0.0, 1.0)
    initial: dict[str, float] = field(
        default_factory=lambda: {
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 50,
            "max_new_tokens": 256,
            "repetition_penalty": 1.1,
            "presence_penalty": 0.2,
        }
    )

    def __post_init__(self) -> None:
        for name in PARAM_NAMES:
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(f"range of {name} must satisfy low < high, got {(low, high)}")
            start = self.initial.get(name)
            if start is None or not low < start < high:
                raise ValueError(
                    f"initial {name} must lie strictly inside {(low, high)}, got {start!r}"
                )
        GenerationParams(**{n: getattr(self, n)[0] for n in PARAM_NAMES})  # lows valid
        GenerationParams(**{n: getattr(self, n)[1] for n in PARAM_NAMES})  # highs valid

    @classmethod
    def for_budget(cls, max_tokens: int) -> ParamRanges:
        """Default ranges with ``max_new_tokens`` over ``[16, max_tokens]`` (the game's effort
        budget), starting at its middle."""
        return cls(max_new_tokens=(MIN_NEW_TOKENS, max_tokens),
                   initial={**cls().initial, "max_new_tokens": (MIN_NEW_TOKENS + max_tokens) // 2})

    def to_dict(self) -> dict[str, Any]:
        """``{name: [low, high], ..., "initial": {...}}`` (what checkpoints store)."""
        return {name: list(getattr(self, name)) for name in PARAM_NAMES} | {
            "initial": dict(self.initial)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamRanges:
        """Inverse of :meth:`to_dict`."""
        return cls(**{name: tuple(data[name]) for name in PARAM_NAMES},
                   initial=dict(data["initial"]))

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` tensors of shape ``(6,)``, in :data:`PARAM_NAMES` order."""
        low = torch.tensor([getattr(self, n)[0] for n in PARAM_NAMES], dtype=torch.float32)
        high = torch.tensor([getattr(self, n)[1] for n in PARAM_NAMES], dtype=torch.float32)
        return low, high

    def initial_logits(self) -> torch.Tensor:
        """Pre-activations ``z0`` whose bounded values are :attr:`initial`."""
        low, high = self.bounds()
        start = torch.tensor([float(self.initial[n]) for n in PARAM_NAMES])
        return torch.logit((start - low) / (high - low))

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """The bounded map ``low + (high - low) * sigmoid(z)``, unrounded, shape ``(..., 6)``."""
        low, high = (bound.to(z.device) for bound in self.bounds())
        return low + (high - low) * torch.sigmoid(z)

    def to_params(self, z: torch.Tensor) -> list[GenerationParams]:
        """One :class:`GenerationParams` per row of ``z`` (shape ``(batch, 6)``)."""
        out = []
        for row in self.values(z.detach().cpu().reshape(-1, len(PARAM_NAMES))).tolist():
            kwargs: dict[str, Any] = dict(zip(PARAM_NAMES, row, strict=True))
            for name in INTEGER_PARAMS:
                kwargs[name] = int(round(kwargs[name]))
            out.append(GenerationParams(**kwargs))
        return out
