"""The abstract sequential public goods game of the paper's theory, as a PettingZoo AEC env.

Agents ``agent_0 .. agent_{n-1}`` act once each, in that order; agent i chooses its
contribution ``c_i`` in [0, 1] (a ``Box(0, 1, (1,))`` action, or with ``levels=K`` a
``Discrete(K)`` action meaning ``c_i = k / (K - 1)``). After the last agent the mechanism pays
``u = mechanism(c)`` (effort ``e_i = c_i``, group score ``G = mean(c)``; formulas in
:mod:`spgg_env.mechanism`) and every agent terminates.

The observation of the agent at position p is a float32 vector of length 3n::

    [ c_j * v_j  for j < n ]   contributions it can see (0 elsewhere)
    [ v_j        for j < n ]   visibility mask: j is a predecessor it sees that has acted
    [ [j == p]   for j < n ]   one-hot position

where it sees predecessor j = p-1 in ``observation="partial"``, every j < p in ``"full"`` and
none in ``"none"`` (and none for a simultaneous mechanism such as ``"pgg"``).

Written lean for speed (``python benchmarks/bench_env.py``: faster than PettingZoo's ``rps_v2``
in the same loop): spaces are built once, an observation is one small zeroed array with two
slices filled, and the rewards of the built-in mechanisms are evaluated on plain floats by
:func:`one_game_payoffs`, bit for bit the vectorised mechanism's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv

from spgg_env.mechanism import (
    THRESHOLD_TOL,
    ClassicPgg,
    ClassicSpgg,
    MacSpgg,
    Mechanism,
    RewardMechanism,
    make_mechanism,
)

OBSERVATION_MODES = ("partial", "full", "none")


def integer_at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) >= ``minimum``.

    Raises:
        ValueError: Naming ``name`` and the bad value otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise ``ValueError`` naming ``name``, the bad value and the choices, unless allowed."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


Columns = tuple[list[float], list[float], list[float], list[float]]


def one_game_payoffs(mechanism: RewardMechanism, c: np.ndarray) -> tuple[float, Columns]:
    """The group score and the reward parts of one game, as plain floats.

    Returns ``(G, (cost, synergy, public_share, penalty))`` with each part a list of n floats,
    equal bit for bit to ``mechanism(c)`` (effort = contribution, ``G`` = mean contribution).

    For the built-in mechanisms (exactly :class:`~spgg_env.mechanism.MacSpgg`,
    :class:`~spgg_env.mechanism.ClassicPgg`, :class:`~spgg_env.mechanism.ClassicSpgg`) it repeats
    the formulas of :mod:`spgg_env.mechanism` operation by operation on Python floats: the
    vectorised call costs ~20 numpy calls, ~75 % of an env episode, for one profile of n
    numbers. The sum of the contributions is still numpy's (its pairwise order differs from
    Python's ``sum``). ``tests/test_scalar_env.py`` checks the equality over random profiles,
    parameters and n. Any other mechanism (a subclass, a user's) is called as it is.
    """
    kind = type(mechanism)
    if kind not in (MacSpgg, ClassicPgg, ClassicSpgg):
        b = mechanism(c)
        parts = (b.cost.tolist(), b.synergy.tolist(), b.public_share.tolist(), b.penalty.tolist())
        return float(np.mean(c)), parts
    n = c.size
    values = c.tolist()
    total = float(np.add.reduce(c))  # c.sum(): numpy's summation order
    group = total / n  # c.mean()
    share = [mechanism.rho / n * total] * n
    if kind is not MacSpgg:  # classic PGG / SPGG: linear cost, nothing else
        zeros = [0.0] * n
        return group, ([mechanism.kappa * x for x in values], zeros, share, zeros)
    cost = [mechanism.kappa * (x * x) for x in values]
    synergy = [0.0] * n
    running = values[0]  # np.cumsum(c)[i]
    for i in range(1, n):
        x = values[i]
        running += x
        synergy[i] = mechanism.gamma * x * ((running - x) / i)
    below = group < mechanism.B - THRESHOLD_TOL
    penalty = [mechanism.P if below else 0.0] * n
    return group, (cost, synergy, share, penalty)


class UnitBox(spaces.Box):
    """``Box(0, 1, shape, float32)`` whose unmasked ``sample()`` is one numpy call.

    Gymnasium's generic ``Box.sample`` costs ~15x more and dominated a benchmark step; this
    draws the same distribution (uniform on [0, 1)) from the space's own seeded ``np_random``.
    """

    def __init__(self, shape: tuple[int, ...], seed: int | None = None) -> None:
        super().__init__(0.0, 1.0, shape, np.float32, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A uniform sample; with a mask or probability, Gymnasium's own rules apply."""
        if mask is not None or probability is not None:
            return super().sample(mask, probability)
        return self.np_random.random(self.shape, dtype=np.float32)


class ScalarSPGGEnv(AECEnv):
    """The scalar SPGG (see the module docstring).

    Args:
        n_agents: Number of agents (>= 1).
        observation: ``"partial"``, ``"full"`` or ``"none"``.
        mechanism: Reward mechanism name (``"mac-spgg"``, ``"pgg"``, ``"spgg"``) or instance.
        mechanism_params: Parameters of the mechanism (e.g. ``{"B": 0.85}``).
        levels: ``None`` for a continuous ``Box(0, 1, (1,))`` action; ``K >= 2`` for a
            ``Discrete(K)`` action of contribution ``k / (K - 1)``.
        render_mode: ``None``, ``"human"`` (print) or ``"ansi"`` (return a string).

    Raises:
        ValueError: For a bad ``n_agents``, ``observation``, ``levels`` or ``render_mode``.
    """

    metadata = {
        "name": "spgg_scalar_v0",
        "render_modes": ["human", "ansi"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_agents: int = 3,
        observation: str = "partial",
        mechanism: str | Mechanism = "mac-spgg",
        mechanism_params: Mapping[str, Any] | None = None,
        levels: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        n = integer_at_least("n_agents", n_agents, 1)
        check_choice("observation", observation, OBSERVATION_MODES)
        if levels is not None:
            levels = integer_at_least("levels", levels, 2)
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        self.mechanism: Mechanism = make_mechanism(mechanism, **dict(mechanism_params or {}))
        self.observation_mode = observation if self.mechanism.sequential else "none"
        self.n_agents = n
        self.levels = levels
        self.render_mode = render_mode

        self.possible_agents = [f"agent_{i}" for i in range(n)]
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self.observation_spaces = {
            a: spaces.Box(0.0, 1.0, (3 * n,), np.float32) for a in self.possible_agents
        }
        self.action_spaces = {
            a: UnitBox((1,)) if self.levels is None else spaces.Discrete(self.levels)
            for a in self.possible_agents
        }
        # position p sees predecessors range(lo, hi) (once they have acted): contiguous always
        self._visible = [(0, 0)] * n
        for p in range(1, n):
            if self.observation_mode == "full":
                self._visible[p] = (0, p)
            elif self.observation_mode == "partial":
                self._visible[p] = (p - 1, p)
        #: Global state for centralised critics: contributions so far, then who has acted.
        self.state_space = spaces.Box(0.0, 1.0, (2 * n,), np.float32)
        self._c = np.zeros(n, dtype=np.float64)
        self._n_acted = 0
        self.np_random, self.np_random_seed = seeding.np_random(None)

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Box:
        """``Box(0, 1, (3n,), float32)`` (the same object every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box | spaces.Discrete:
        """``Box(0, 1, (1,), float32)``, or ``Discrete(levels)``."""
        return self.action_spaces[agent]

    @property
    def contributions(self) -> np.ndarray:
        """The contributions made so far this episode (a copy)."""
        return self._c[: self._n_acted].copy()

    # ------------------------------------------------------------------- reset
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Start an episode (the game itself has no randomness; ``seed`` seeds ``np_random``)."""
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        agents = self.possible_agents
        self.agents = agents[:]
        self.rewards = dict.fromkeys(agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(agents, 0.0)
        self.terminations = dict.fromkeys(agents, False)
        self.truncations = dict.fromkeys(agents, False)
        self.infos = {a: {} for a in agents}
        self._c[:] = 0.0
        self._n_acted = 0
        self.agent_selection = agents[0]

    # ----------------------------------------------------------------- observe
    def observe(self, agent: str) -> np.ndarray:
        """The 3n-vector of the module docstring for ``agent`` (a new array each call)."""
        n, p = self.n_agents, self._index[agent]
        lo, hi = self._visible[p]
        hi = min(hi, self._n_acted)
        obs = np.zeros(3 * n, dtype=np.float32)
        if lo < hi:
            obs[lo:hi] = self._c[lo:hi]
            obs[n + lo : n + hi] = 1.0
        obs[2 * n + p] = 1.0
        return obs

    def state(self) -> np.ndarray:
        """The global state: ``[c_j if j acted else 0]`` then ``[j acted]``, float32 (2n,)."""
        n = self.n_agents
        state = np.zeros(2 * n, dtype=np.float32)
        state[: self._n_acted] = self._c[: self._n_acted]
        state[n : n + self._n_acted] = 1.0
        return state

    # -------------------------------------------------------------------- step
    def _contribution(self, agent: str, action: Any) -> float:
        """Read ``action`` as a contribution in [0, 1], or raise naming the agent."""
        if isinstance(action, np.ndarray) and action.size == 1:
            action = action.reshape(-1)[0]
        if isinstance(action, bool | np.bool_) or not isinstance(action, int | float | np.number):
            raise TypeError(
                f"{agent}'s action must be a number or a 1-element array, "
                f"got {type(action).__name__}: {action!r:.80}"
            )
        if self.levels is None:
            value = float(action)
            if not 0.0 <= value <= 1.0:  # also rejects NaN
                raise ValueError(f"{agent}'s contribution must be in [0, 1], got {value!r}")
            return value
        if not isinstance(action, int | np.integer):
            raise TypeError(
                f"{agent}'s action must be an integer level in [0, {self.levels - 1}], "
                f"got {type(action).__name__}: {action!r}"
            )
        if not 0 <= action < self.levels:
            raise ValueError(
                f"{agent}'s level must be in [0, {self.levels - 1}], got {int(action)!r}"
            )
        return int(action) / (self.levels - 1)

    def step(self, action: Any) -> None:
        """Record the acting agent's contribution; pay everyone after the last one.

        Raises:
            TypeError: If the action is not a number (or a 1-element array).
            ValueError: If the contribution is outside [0, 1] or NaN, the level out of range,
                or a terminated agent's action is not ``None``.
        """
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        p = self._index[agent]
        self._c[p] = self._contribution(agent, action)
        self._n_acted = p + 1
        self._cumulative_rewards[agent] = 0.0
        if p == self.n_agents - 1:
            self._finish()
        else:
            self.agent_selection = self.possible_agents[p + 1]
        if self.render_mode == "human":
            print(f"{agent}: c = {self._c[p]:.4f}")

    def _finish(self) -> None:
        """Pay the rewards and end the episode."""
        group, columns = one_game_payoffs(self.mechanism, self._c)
        for agent, c_i, cost, synergy, share, penalty in zip(
            self.possible_agents, self._c.tolist(), *columns, strict=True
        ):
            total = -cost + synergy + share - penalty  # RewardBreakdown.total, same float order
            self.rewards[agent] = total
            self._cumulative_rewards[agent] += total
            self.terminations[agent] = True
            self.infos[agent] = {
                "contribution": c_i,
                "score": c_i,
                "effort": c_i,
                "cost": cost,
                "group_score": group,
                "reward_components": {
                    "cost": cost,
                    "synergy": synergy,
                    "public_share": share,
                    "penalty": penalty,
                    "total": total,
                },
            }
        self.agent_selection = self.possible_agents[0]

    # ------------------------------------------------------------------ render
    def render(self) -> str | None:
        """The contributions so far (``"ansi"``: returned; ``"human"``: printed)."""
        if self.render_mode is None:
            return None
        text = " ".join(
            f"{a}={v:.3f}" for a, v in zip(self.possible_agents, self.contributions, strict=False)
        )
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Nothing to release."""
