"""Reward mechanisms of the sequential public goods game, as pure vectorised functions.

Notation (agents act in order i = 1..n; arrays have a trailing agent axis of length n and any
leading batch shape):

* ``c_i`` in [0, 1]: agent i's contribution score (the evaluator's score of its text, or the
  number itself in the scalar game).
* ``e_i`` in [0, 1]: agent i's effort, the base of its cost. Defaults to ``c_i``; the text game
  passes its normalised token count.
* ``G`` in [0, 1]: the group score (the final answer's score in the text game; defaults to the
  mean contribution).

MAC-SPGG (synergy-aligned reward)::

    u_i = - kappa * e_i**2                              individual convex cost
          + gamma * c_i * mean(c_1..c_{i-1})            synergy bonus (0 for the first agent)
          + (rho / n) * sum_j c_j                        equal share of the public good
          - P * [G < B]                                  collective penalty below threshold

``[G < B]`` is 1 when ``G < B - THRESHOLD_TOL`` (``1e-9``), so a group score equal to ``B`` up to
float rounding (the mean of grid levels) reaches the threshold.

Defaults: the paper's released values for n = 3, ``B = 0.85, gamma = 1.5, rho = 1.8, P = 1.5``,
and ``kappa = 1.28`` (ours: the paper's cost scale is not public). The exact solver
(:mod:`spgg_env.equilibrium`) shows that with these values the full-observation game on the
11-level grid has a unique SPNE in which every agent contributes and the group reaches B, for
n = 2..5 (n = 3: path 0.6, 1, 1). Why this ``kappa``: with ``kappa`` near 1 the first agent's
stand-alone optimum ``(rho / n) / (2 kappa)`` lies below ``B``, so the penalty is what carries
the group to ``B`` (with ``P = 0`` the n = 3 SPNE is 0.5, 0.6, 0.6); the draft's ``kappa = 0.5``
reached ``B`` without the penalty and, like any round value (1.0, 1.25), put some optima exactly
midway between two grid levels, i.e. exact payoff ties off the path, so the grid SPNE was not
unique. ``docs/theory.md`` has the sweep and the comparative statics.

Classic PGG / SPGG (the payoffs MAC-SPGG fixes; PGG is simultaneous, SPGG sequential)::

    u_i = - kappa * e_i + (rho / n) * sum_j c_j          linear cost, rho / n < kappa

Every function returns a :class:`RewardBreakdown` whose ``total`` equals the sum of its parts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True, eq=False)
class RewardBreakdown:
    """Per-agent reward and its parts; every array has shape ``(..., n)``."""

    cost: NDArray[np.float64]
    synergy: NDArray[np.float64]
    public_share: NDArray[np.float64]
    penalty: NDArray[np.float64]

    @property
    def total(self) -> NDArray[np.float64]:
        """The reward: ``-cost + synergy + public_share - penalty``."""
        return -self.cost + self.synergy + self.public_share - self.penalty

    def agent(self, index: int) -> dict[str, float]:
        """The parts for one agent of an unbatched game, as plain floats (for ``info``)."""
        parts = {f.name: float(getattr(self, f.name)[..., index]) for f in fields(self)}
        parts["total"] = float(self.total[..., index])
        return parts


#: Group scores within this distance below ``B`` count as reaching it (float rounding).
THRESHOLD_TOL = 1e-9


def _validate(owner: object, name: str, low: float, high: float = np.inf) -> float:
    """Check parameter ``name`` of a frozen dataclass and store it as a plain float."""
    value = getattr(owner, name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}") from None
    if not (low <= number <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    object.__setattr__(owner, name, number)
    return number


def _checked(name: str, values: ArrayLike, low: float, high: float) -> NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers in [{low}, {high}], got {values!r}") from None
    bad = ~((array >= low) & (array <= high))
    if bad.any():
        raise ValueError(
            f"{name} must be in [{low}, {high}] (no NaN), got {array[bad].ravel()[:5].tolist()}"
        )
    return array


def _as_inputs(
    contributions: ArrayLike, group_score: ArrayLike | None, effort: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    c = _checked("contributions", contributions, 0.0, 1.0)
    if c.ndim == 0 or c.shape[-1] == 0:
        raise ValueError(
            f"contributions must have a trailing agent axis of length n >= 1, got shape {c.shape}"
        )
    e = c if effort is None else _checked("effort", effort, 0.0, np.inf)
    if e.shape != c.shape:
        raise ValueError(f"effort shape {e.shape} differs from contributions shape {c.shape}")
    g = c.mean(axis=-1) if group_score is None else _checked("group_score", group_score, 0.0, 1.0)
    if g.shape != c.shape[:-1]:
        raise ValueError(
            f"group_score shape {g.shape} must be the contributions' batch shape {c.shape[:-1]}"
        )
    return c, g, e


@dataclass(frozen=True)
class MacSpgg:
    """MAC-SPGG's synergy-aligned reward (formula in the module docstring).

    Defaults are the paper's released values for n = 3 (B, gamma, rho, P); ``kappa`` is ours
    (see the module docstring for why 1.28).

    Attributes:
        B: Threshold on the group score, in [0, 1].
        gamma: Synergy coefficient, >= 0.
        rho: Public-good multiplier, >= 0 (each agent gets ``rho / n`` of the sum).
        P: Collective penalty when the group score falls below ``B``, >= 0.
        kappa: Cost scale, > 0 (strictly convex cost ``kappa * e**2``).
    """

    B: float = 0.85
    gamma: float = 1.5
    rho: float = 1.8
    P: float = 1.5
    kappa: float = 1.28

    name: ClassVar[str] = "mac-spgg"
    sequential: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _validate(self, "B", 0.0, 1.0)
        _validate(self, "gamma", 0.0)
        _validate(self, "rho", 0.0)
        _validate(self, "P", 0.0)
        if _validate(self, "kappa", 0.0) == 0.0:
            raise ValueError("kappa must be > 0 (strictly convex cost), got 0.0")

    def __call__(
        self,
        contributions: ArrayLike,
        group_score: ArrayLike | None = None,
        effort: ArrayLike | None = None,
    ) -> RewardBreakdown:
        c, g, e = _as_inputs(contributions, group_score, effort)
        n = c.shape[-1]
        predecessors = np.cumsum(c, axis=-1) - c
        counts = np.arange(n, dtype=np.float64)
        mean_before = np.divide(predecessors, counts, out=np.zeros_like(c), where=counts > 0)
        below = (g < self.B - THRESHOLD_TOL)[..., None]
        return RewardBreakdown(
            cost=self.kappa * e**2,
            synergy=self.gamma * c * mean_before,
            public_share=np.broadcast_to(self.rho / n * c.sum(axis=-1, keepdims=True), c.shape),
            penalty=np.broadcast_to(self.P * below, c.shape).astype(np.float64),
        )


@dataclass(frozen=True)
class ClassicPgg:
    """Classic public goods payoffs: linear cost ``kappa * e_i`` and the public share.

    With ``rho / n < kappa`` (the defaults for every n >= 2) contributing nothing is each agent's
    dominant strategy, although everyone contributing fully is better for all when ``rho > kappa``.

    Attributes:
        rho: Public-good multiplier, >= 0.
        kappa: Linear cost per unit of effort, >= 0.
    """

    rho: float = 1.8
    kappa: float = 1.0

    name: ClassVar[str] = "pgg"
    sequential: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _validate(self, "rho", 0.0)
        _validate(self, "kappa", 0.0)

    def __call__(
        self,
        contributions: ArrayLike,
        group_score: ArrayLike | None = None,
        effort: ArrayLike | None = None,
    ) -> RewardBreakdown:
        c, _, e = _as_inputs(contributions, group_score, effort)
        n = c.shape[-1]
        zeros = np.zeros_like(c)
        return RewardBreakdown(
            cost=self.kappa * e,
            synergy=zeros,
            public_share=np.broadcast_to(self.rho / n * c.sum(axis=-1, keepdims=True), c.shape),
            penalty=zeros,
        )


@dataclass(frozen=True)
class ClassicSpgg(ClassicPgg):
    """Classic sequential public goods game: PGG payoffs, agents act in turn."""

    name: ClassVar[str] = "spgg"
    sequential: ClassVar[bool] = True


Mechanism = MacSpgg | ClassicPgg | ClassicSpgg


class RewardMechanism(Protocol):
    """What the env and the solver need from a mechanism (ours or a user's)."""

    sequential: bool

    def __call__(
        self,
        contributions: ArrayLike,
        group_score: ArrayLike | None = None,
        effort: ArrayLike | None = None,
    ) -> RewardBreakdown: ...


MECHANISMS: dict[str, type] = {cls.name: cls for cls in (MacSpgg, ClassicPgg, ClassicSpgg)}


def make_mechanism(name: str | Mechanism = "mac-spgg", **params: Any) -> Mechanism:
    """Build a mechanism by name (``"mac-spgg"``, ``"pgg"``, ``"spgg"``) with parameters.

    Raises:
        ValueError: For an unknown name, an unknown parameter, or a parameter out of range.
    """
    if not isinstance(name, str):
        if params:
            raise ValueError("mechanism parameters cannot be given with a ready mechanism")
        return name
    key = name.lower()
    if key not in MECHANISMS:
        raise ValueError(f"unknown mechanism {name!r}; choose one of {sorted(MECHANISMS)}")
    cls = MECHANISMS[key]
    allowed = {f.name for f in fields(cls)}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} for mechanism {key!r}; "
            f"valid: {sorted(allowed)}"
        )
    return cls(**params)
