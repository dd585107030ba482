"""Exact equilibria of the scalar public goods game on a grid of contribution levels.

Each of ``n`` agents picks a contribution from the same grid ``levels`` (default 11 levels
0, 0.1, ..., 1); the mechanism turns the contribution vector into one payoff per agent (the group
score is the mechanism's default, the mean contribution).

* **Sequential mechanisms** (``mechanism.sequential``): the full-observation game, where agent i
  sees every predecessor's level. :func:`solve_spne` finds the subgame-perfect Nash equilibrium
  (SPNE) by backward induction over the whole game tree, vectorised with numpy: the payoffs of all
  ``K**n`` leaves are computed in one mechanism call; then for i = n-1, ..., 0 agent i's best level
  is taken along axis i at every decision node at once, and the node's value vector is the child's.
  The SPNE is *unique* when no decision node, on or off the path, has a tie: two levels whose
  payoffs for the mover differ by at most ``tol`` (absolute, default ``1e-9``; payoffs are O(1), so
  this only catches exact ties up to float rounding). Ties are broken toward the lowest level and
  counted.
* **Simultaneous mechanisms** (classic PGG): the solution concept is Nash equilibrium of the normal
  form. :func:`solve_nash` lists every pure Nash equilibrium on the grid (a profile where each
  agent's payoff is within ``tol`` of its best response to the others).

:func:`solve` picks the right concept; :func:`sweep` solves a grid of mechanism parameters and
tabulates whether a unique SPNE holds, whether every agent contributes, whether the group reaches
the threshold ``B``, and the welfare (sum of payoffs). The partial-observation game (agent i sees
only agent i-1) is a game of imperfect information and is not solved here.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from spgg_env.mechanism import THRESHOLD_TOL, RewardMechanism, make_mechanism

#: Default absolute tolerance under which two payoffs count as a tie.
TIE_TOL = 1e-9
#: Default grid: 11 levels 0, 0.1, ..., 1.
DEFAULT_LEVELS = np.linspace(0.0, 1.0, 11)
#: Largest game tree (number of leaves ``K**n``) the solvers accept by default.
MAX_LEAVES = 5_000_000


@dataclass(frozen=True, eq=False)
class Equilibrium:
    """An equilibrium of the scalar game on a grid.

    Attributes:
        concept: ``"spne"`` (sequential game) or ``"nash"`` (simultaneous game).
        levels: The grid of contribution levels, shape ``(K,)``.
        path_index: Level index chosen by each agent on the equilibrium path (for ``"nash"``, the
            first pure equilibrium in lexicographic order).
        payoffs: Each agent's payoff on the path, shape ``(n,)``.
        unique: ``"spne"``: no tie at any decision node; ``"nash"``: exactly one pure equilibrium.
        n_ties: ``"spne"``: number of decision nodes with a tie; ``"nash"``: number of pure
            equilibria beyond the first.
        threshold: The mechanism's ``B`` (0 when it has none).
        policy: ``"spne"`` only: ``policy[i]`` has shape ``(K,) * i`` and holds agent i's best
            level index given its predecessors' level indices (the SPNE strategy).
        ties: ``"spne"`` only: ``ties[i]`` (same shape as ``policy[i]``) marks tied nodes.
        equilibria: ``"nash"`` only: every pure equilibrium as level indices, shape ``(m, n)``.
    """

    concept: str
    levels: NDArray[np.float64]
    path_index: tuple[int, ...]
    payoffs: NDArray[np.float64]
    unique: bool
    n_ties: int
    threshold: float
    policy: tuple[NDArray[np.intp], ...] | None = None
    ties: tuple[NDArray[np.bool_], ...] | None = None
    equilibria: NDArray[np.intp] | None = None

    @property
    def path(self) -> NDArray[np.float64]:
        """Each agent's contribution on the equilibrium path, shape ``(n,)``."""
        return self.levels[list(self.path_index)]

    @property
    def welfare(self) -> float:
        """Sum of the agents' payoffs on the path."""
        return float(self.payoffs.sum())

    @property
    def group_score(self) -> float:
        """The group score on the path: the mean contribution."""
        return float(self.path.mean())

    @property
    def all_positive(self) -> bool:
        """Whether every agent contributes a positive amount on the path."""
        return bool(np.all(self.path > 0))

    @property
    def reaches_threshold(self) -> bool:
        """Whether the group score reaches ``B`` on the path (always, without a threshold)."""
        return self.group_score >= self.threshold - THRESHOLD_TOL

    def action(self, agent: int, predecessors: Sequence[int] = ()) -> int:
        """Agent ``agent``'s SPNE level index given its predecessors' level indices."""
        if self.policy is None:
            raise ValueError("action() needs an SPNE; this is a Nash equilibrium of a PGG")
        if len(predecessors) != agent:
            raise ValueError(
                f"agent {agent} sees {agent} predecessors, got {len(predecessors)} level indices"
            )
        return int(self.policy[agent][tuple(predecessors)])


def _levels(levels: ArrayLike | None) -> NDArray[np.float64]:
    grid = DEFAULT_LEVELS if levels is None else np.asarray(levels, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"levels must be a 1-D grid of at least 2 values, got shape {grid.shape}")
    if not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
        raise ValueError(f"levels must be finite and strictly increasing, got {grid.tolist()}")
    return grid


def _leaf_payoffs(
    mechanism: RewardMechanism, n_agents: int, grid: NDArray[np.float64], max_leaves: int
) -> NDArray[np.float64]:
    """Payoffs of every profile, shape ``(K,) * n + (n,)``."""
    if not isinstance(n_agents, int | np.integer) or n_agents < 1:
        raise ValueError(f"n_agents must be a positive integer, got {n_agents!r}")
    leaves = grid.size**n_agents
    if leaves > max_leaves:
        raise ValueError(
            f"the game has {grid.size}**{n_agents} = {leaves} profiles, above max_leaves="
            f"{max_leaves}; use fewer levels or agents, or raise max_leaves"
        )
    mesh = np.meshgrid(*([grid] * n_agents), indexing="ij")
    profiles = np.stack(mesh, axis=-1)
    return np.asarray(mechanism(profiles).total, dtype=np.float64)


def _first_best(utility: NDArray[np.float64], axis: int, tol: float) -> tuple[NDArray, NDArray]:
    """Lowest index within ``tol`` of the maximum along ``axis``, and whether it is tied."""
    near_best = utility >= utility.max(axis=axis, keepdims=True) - tol
    return near_best.argmax(axis=axis), near_best.sum(axis=axis) > 1


def solve_spne(
    mechanism: RewardMechanism,
    n_agents: int = 3,
    levels: ArrayLike | None = None,
    *,
    tol: float = TIE_TOL,
    max_leaves: int = MAX_LEAVES,
) -> Equilibrium:
    """Subgame-perfect equilibrium of the full-observation sequential game by backward induction.

    Args:
        mechanism: Any mechanism: callable on contributions of shape ``(..., n)`` returning an
            object with ``.total`` of the same shape.
        n_agents: Number of agents ``n``.
        levels: Strictly increasing grid of contribution levels (default 0, 0.1, ..., 1).
        tol: Absolute tolerance under which two payoffs of the mover count as a tie.
        max_leaves: Refuse games with more than this many profiles ``K**n``.

    Returns:
        The SPNE (ties broken toward the lowest level) with its policy tables.
    """
    grid = _levels(levels)
    value = _leaf_payoffs(mechanism, n_agents, grid, max_leaves)  # (K,)*n + (n,)
    policy: list[NDArray[np.intp]] = []
    ties: list[NDArray[np.bool_]] = []
    for i in reversed(range(n_agents)):
        best, tied = _first_best(value[..., i], axis=i, tol=tol)  # (K,)*i
        value = np.take_along_axis(value, best[..., None, None], axis=i)[..., 0, :]
        policy.append(best)
        ties.append(tied)
    policy.reverse()
    ties.reverse()
    path: list[int] = []
    for i in range(n_agents):
        path.append(int(policy[i][tuple(path)]))
    n_ties = int(sum(t.sum() for t in ties))
    return Equilibrium(
        concept="spne",
        levels=grid,
        path_index=tuple(path),
        payoffs=value.copy(),
        unique=n_ties == 0,
        n_ties=n_ties,
        threshold=float(getattr(mechanism, "B", 0.0)),
        policy=tuple(policy),
        ties=tuple(ties),
    )


def solve_nash(
    mechanism: RewardMechanism,
    n_agents: int = 3,
    levels: ArrayLike | None = None,
    *,
    tol: float = TIE_TOL,
    max_leaves: int = MAX_LEAVES,
) -> Equilibrium:
    """Every pure Nash equilibrium of the simultaneous (normal-form) game on the grid.

    A profile is an equilibrium when, for every agent i, ``u_i`` is within ``tol`` of
    ``max over c_i' of u_i(c_i', c_-i)``. Arguments as in :func:`solve_spne`.

    Returns:
        The first equilibrium in lexicographic order as the path, all of them in ``equilibria``.

    Raises:
        ValueError: If the game has no pure equilibrium on the grid.
    """
    grid = _levels(levels)
    payoffs = _leaf_payoffs(mechanism, n_agents, grid, max_leaves)
    stable = np.ones(payoffs.shape[:-1], dtype=bool)
    for i in range(n_agents):
        own = payoffs[..., i]
        stable &= own >= own.max(axis=i, keepdims=True) - tol
    found = np.argwhere(stable)
    if found.size == 0:
        raise ValueError(f"{mechanism!r} has no pure Nash equilibrium on this grid")
    first = tuple(int(k) for k in found[0])
    return Equilibrium(
        concept="nash",
        levels=grid,
        path_index=first,
        payoffs=payoffs[first].copy(),
        unique=len(found) == 1,
        n_ties=len(found) - 1,
        threshold=float(getattr(mechanism, "B", 0.0)),
        equilibria=found,
    )


def solve(
    mechanism: RewardMechanism, n_agents: int = 3, levels: ArrayLike | None = None, **options: Any
) -> Equilibrium:
    """SPNE for a sequential mechanism, pure Nash equilibria for a simultaneous one."""
    solver = solve_spne if mechanism.sequential else solve_nash
    return solver(mechanism, n_agents, levels, **options)


def spne_policy(
    mechanism: RewardMechanism, n_agents: int = 3, levels: ArrayLike | None = None, **options: Any
) -> tuple[NDArray[np.intp], ...]:
    """Each agent's SPNE best-response table: ``table[i][k_1, ..., k_{i-1}]`` is agent i's level
    index given its predecessors' level indices (agent 0's table is a 0-d array)."""
    policy = solve_spne(mechanism, n_agents, levels, **options).policy
    assert policy is not None
    return policy


def sweep(
    mechanism_name: str,
    param_grid: Mapping[str, Sequence[float]],
    n_agents: int = 3,
    levels: ArrayLike | None = None,
    *,
    fixed: Mapping[str, float] | None = None,
    **options: Any,
) -> dict[str, NDArray]:
    """Solve the game at every combination of mechanism parameters.

    Args:
        mechanism_name: A name for :func:`~spgg_env.mechanism.make_mechanism`.
        param_grid: Parameter name -> values, e.g. ``{"gamma": [...], "P": [...]}``.
        n_agents: Number of agents.
        levels: Contribution grid (default 0, 0.1, ..., 1).
        fixed: Other parameters held fixed (the mechanism's defaults otherwise).
        **options: Passed to the solver (``tol``, ``max_leaves``).

    Returns:
        A table as a dict of arrays, each of shape ``tuple(len(v) for v in param_grid.values())``
        (indexed in the order of ``param_grid``): one array per parameter (its value), ``unique``,
        ``all_positive``, ``reaches_B``, ``cooperative`` (all three), ``welfare``,
        ``group_score``, and ``path`` with a trailing agent axis.
    """
    if not param_grid:
        raise ValueError("param_grid must name at least one parameter, e.g. {'gamma': [1, 2]}")
    names = list(param_grid)
    values = [np.asarray(param_grid[k], dtype=np.float64) for k in names]
    shape = tuple(v.size for v in values)
    table: dict[str, NDArray] = {k: np.empty(shape) for k in [*names, "welfare", "group_score"]}
    for key in ("unique", "all_positive", "reaches_B"):
        table[key] = np.empty(shape, dtype=bool)
    table["path"] = np.empty((*shape, n_agents))
    for index in itertools.product(*(range(s) for s in shape)):
        params = {k: float(v[j]) for k, v, j in zip(names, values, index, strict=True)}
        eq = solve(
            make_mechanism(mechanism_name, **{**(fixed or {}), **params}),
            n_agents,
            levels,
            **options,
        )
        for k in names:
            table[k][index] = params[k]
        table["unique"][index] = eq.unique
        table["all_positive"][index] = eq.all_positive
        table["reaches_B"][index] = eq.reaches_threshold
        table["welfare"][index] = eq.welfare
        table["group_score"][index] = eq.group_score
        table["path"][index] = eq.path
    table["cooperative"] = table["unique"] & table["all_positive"] & table["reaches_B"]
    return table
