"""A single-learner Gymnasium view of the scalar game, for stable-baselines3 and friends.

:class:`SingleLearnerEnv` is a ``gymnasium.Env`` in which one learner takes one seat of the
scalar SPGG; the other seats are played by co-player policies. One episode of the wrapper is
one decision of the learner:

1. ``reset()`` picks the learner's seat (fixed, or uniformly at random each episode for
   shared-parameter self-play), lets the co-players before it act, and returns the learner's
   observation (the 3n-vector of :mod:`spgg_env.scalar_env`);
2. ``step(action)`` plays the learner's contribution, lets the co-players after it act, and
   returns the learner's final reward with ``terminated=True``.

A co-player is any of:

* a callable ``obs -> action`` (an action of the scalar game's action space);
* a float ``v`` in [0, 1]: always contribute ``v`` (with ``levels=K``: the nearest level);
* ``"random"``: a uniform random action drawn from the wrapper's seeded ``np_random``;
* ``"self"``: the learner's own current policy, set with :meth:`SingleLearnerEnv.set_policy`
  (until one is set, ``"self"`` acts like ``"random"``).

Example (self-play with SB3)::

    env = SingleLearnerEnv(seat="random", co_players="self", levels=11)
    model = PPO("MlpPolicy", env)
    env.set_policy(lambda obs: model.predict(obs, deterministic=False)[0])
    model.learn(20_000)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np

from spgg_env.scalar_env import ScalarSPGGEnv

Policy = Callable[[np.ndarray], Any]
CoPlayer = Policy | float | str | None


class SingleLearnerEnv(gymnasium.Env):
    """One learner in one seat of the scalar SPGG; co-players fill the other seats.

    Args:
        env: The scalar game to play; default ``ScalarSPGGEnv(**env_kwargs)``.
        seat: The learner's position (negative counts from the end), or ``"random"`` for a
            seat drawn each episode.
        co_players: One co-player for every other seat, or a sequence of n (the entry at a
            fixed learner seat is ignored and may be ``None``). See the module docstring for
            what a co-player is.
        **env_kwargs: Arguments of :class:`~spgg_env.scalar_env.ScalarSPGGEnv` when ``env`` is
            not given (``n_agents``, ``observation``, ``mechanism``, ``levels``...).

    Raises:
        ValueError: For a bad seat, a wrong number of co-players, or a bad co-player.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        env: ScalarSPGGEnv | None = None,
        *,
        seat: int | str = -1,
        co_players: CoPlayer | Sequence[CoPlayer] = "self",
        **env_kwargs: Any,
    ) -> None:
        super().__init__()
        if env is not None and env_kwargs:
            raise ValueError(f"pass either env or env kwargs, not both (got {sorted(env_kwargs)})")
        self.game = env if env is not None else ScalarSPGGEnv(**env_kwargs)
        n = self.game.n_agents
        if seat != "random":
            if isinstance(seat, bool) or not isinstance(seat, int | np.integer):
                raise ValueError(f"seat must be an int or 'random', got {seat!r}")
            if not -n <= seat < n:
                raise ValueError(f"seat must be in [{-n}, {n - 1}] for {n} agents, got {seat}")
            seat = int(seat) % n
        self.seat_mode = seat
        if isinstance(co_players, str | float | int) or callable(co_players):
            co_players = [co_players] * n
        co_players = list(co_players)
        if len(co_players) != n:
            raise ValueError(f"need one co-player per seat ({n}), got {len(co_players)}")
        self._co_players = [
            None if p is None and i == seat else self._make_player(p)
            for i, p in enumerate(co_players)
        ]
        self._policy: Policy | None = None
        first = self.game.possible_agents[0]
        self.observation_space = self.game.observation_space(first)
        self.action_space = self.game.action_space(first)
        self.seat = 0 if seat == "random" else seat

    def set_policy(self, policy: Policy | None) -> None:
        """Set the learner's current policy (``obs -> action``) used by ``"self"`` co-players."""
        if policy is not None and not callable(policy):
            raise TypeError(f"policy must be callable or None, got {type(policy).__name__}")
        self._policy = policy

    # ------------------------------------------------------------- co-players
    def _random_action(self) -> Any:
        levels = self.game.levels
        if levels is None:
            return self.np_random.uniform(0.0, 1.0, size=1).astype(np.float32)
        return int(self.np_random.integers(levels))

    def _make_player(self, spec: CoPlayer) -> Policy:
        if callable(spec):
            return spec
        if spec == "random":
            return lambda obs: self._random_action()
        if spec == "self":
            return lambda obs: self._random_action() if self._policy is None else self._policy(obs)
        if isinstance(spec, float | int) and not isinstance(spec, bool) and 0.0 <= spec <= 1.0:
            levels = self.game.levels
            action = (
                np.array([spec], dtype=np.float32)
                if levels is None
                else int(round(spec * (levels - 1)))
            )
            return lambda obs: action
        raise ValueError(
            f"a co-player must be a callable, a float in [0, 1], 'random' or 'self'; got {spec!r}"
        )

    def _play_co_players(self) -> None:
        """Let co-players act until it is the learner's turn or the episode is over."""
        game = self.game
        learner = game.possible_agents[self.seat]
        while game.agents and not game.terminations[game.agent_selection]:
            agent = game.agent_selection
            if agent == learner:
                return
            player = self._co_players[game.possible_agents.index(agent)]
            game.step(player(game.observe(agent)))

    # ---------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: pick the seat, let the co-players before it act."""
        super().reset(seed=seed)
        self.game.reset(seed=seed, options=options)
        if self.seat_mode == "random":
            self.seat = int(self.np_random.integers(self.game.n_agents))
        self._play_co_players()
        return self.game.observe(self.game.possible_agents[self.seat]), {"seat": self.seat}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Play the learner's action and the remaining co-players; return its final reward."""
        learner = self.game.possible_agents[self.seat]
        if self.game.agent_selection != learner or self.game.terminations[learner]:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        self.game.step(action)
        self._play_co_players()
        info = {**self.game.infos[learner], "seat": self.seat}
        reward = float(self.game._cumulative_rewards[learner])
        return self.game.observe(learner), reward, True, False, info
