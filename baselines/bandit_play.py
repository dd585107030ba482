"""Independent bandit learners playing the public goods game: scalar levels or text presets.

**Scalar game** (:func:`play_scalar`). Each of ``n`` agents picks one of ``K`` contribution levels
``levels[k]`` per round, in order; the mechanism pays ``u = mechanism(c)`` (group score = mean
contribution, effort = contribution, as in ``spgg_env.aec_env(task="scalar")``). One bandit per
agent, all independent. An agent's bandit keeps a separate arm table per *observed context*:

* ``"full"``: agent i sees every predecessor's level, context ``(k_0, ..., k_{i-1})`` (``K**i``
  tables). This is the full-observation sequential game whose subgame-perfect equilibrium
  ``spgg_env.equilibrium.solve_spne`` computes; a tabular contextual bandit can represent, and
  learn, the SPNE strategy (a best response at every node, off the path too).
* ``"partial"``: agent i sees only agent i-1's level (``K`` tables; agent 0 has one).
* ``"none"``: context-free bandits. Each agent commits to a level without looking at the others,
  so at best they learn a Nash equilibrium of the simultaneous game -- the right model for
  classic PGG (a simultaneous game), not for the SPNE of a sequential one.

Rewards are scaled into [0, 1] with the exact minimum and maximum of the mechanism's payoffs over
the ``K**n`` profiles of the grid (:func:`reward_bounds`), ``r01 = (u - u_min) / (u_max -
u_min)``, the same affine map for every agent, so no ordering of payoffs changes.

Runs are vectorised: ``runs`` independent replications (one seed each) advance together, one
mechanism call per round for all of them.

**Text game** (:func:`play_text`, :class:`PresetBandits`). The arms are generation presets
(effort levels: low, medium and high ``max_new_tokens`` and temperature); every agent's bandit
picks a preset per episode, its LLM generates with it on the episode engine, and the bandit is
paid the agent's reward (``step.reward``), scaled with the text-game bounds of
:func:`reward_bounds` (``levels=None``). Works with any :class:`~spgg_env.agents.backend.Backend`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from spgg_env.agents.backend import Backend, GenerationParams
from spgg_env.agents.engine import Request
from spgg_env.baselines.bandits import Bandit, make_bandit, scale_rewards
from spgg_env.mechanism import Mechanism, make_mechanism
from spgg_env.seeding import LEARNER, derive_seed
from spgg_env.spec import GameSpec

OBSERVATIONS = ("full", "partial", "none")

#: Bandit options :func:`play_scalar` uses unless told otherwise, tuned on MAC-SPGG with K = 5
#: levels (``examples/bandits_scalar.py``). All forget (``discount`` < 1) because each agent's
#: problem shifts while the others learn; epsilon-greedy keeps a 3 % exploration floor so that
#: off-path contexts keep being visited; EXP3 explores 5 % of the time.
SCALAR_OPTIONS: dict[str, dict[str, float]] = {
    "epsilon-greedy": {"discount": 0.998, "epsilon": 0.2, "decay": 0.001, "epsilon_min": 0.03},
    "ucb1": {"discount": 0.999},
    "thompson": {"discount": 0.998},
    "exp3": {"gamma": 0.05, "discount": 0.9995},
}

#: Effort presets for the text game: more tokens and more sampling as effort rises.
PRESETS: dict[str, GenerationParams] = {
    "low": GenerationParams(temperature=0.0, max_new_tokens=32),
    "medium": GenerationParams(temperature=0.3, top_p=0.95, max_new_tokens=128),
    "high": GenerationParams(temperature=0.7, top_p=0.95, max_new_tokens=384),
}


def reward_bounds(
    mechanism: Mechanism, n_agents: int, levels: ArrayLike | None = None
) -> tuple[float, float]:
    """Lowest and highest payoff any agent can get.

    Args:
        mechanism: The reward mechanism.
        n_agents: Number of agents.
        levels: The scalar game's grid: the bounds are then exact, the min and max of every
            agent's payoff over all ``K**n`` profiles (effort = contribution, group score = mean).
            ``None`` for the text game, where contributions ``c``, efforts ``e`` and the group
            score ``G`` vary independently in [0, 1]: the bounds are then taken over the vertices
            of that box (``c, e`` in ``{0, 1}**n``, ``G`` in ``{0, 1}``). That is exact for the
            mechanisms of ``spgg_env.mechanism``, whose payoffs are multilinear in ``c``, a
            monotone function of each ``e_i`` and a step function of ``G``.

    Returns:
        ``(low, high)`` with ``low < high``.
    """
    if levels is not None:
        grid = np.asarray(levels, dtype=np.float64)
        mesh = np.meshgrid(*([grid] * n_agents), indexing="ij")
        totals = mechanism(np.stack(mesh, axis=-1).reshape(-1, n_agents)).total
    else:
        corners = np.array(list(itertools.product((0.0, 1.0), repeat=2 * n_agents + 1)))
        c, e, g = corners[:, :n_agents], corners[:, n_agents:-1], corners[:, -1]
        totals = mechanism(c, group_score=g, effort=e).total
    low, high = float(totals.min()), float(totals.max())
    if not high > low:
        raise ValueError(f"mechanism {mechanism!r} pays a constant {low}; nothing to learn")
    return low, high


def context_counts(n_agents: int, n_levels: int, observation: str) -> list[int]:
    """Number of contexts of each agent's bandit under ``observation``."""
    if observation not in OBSERVATIONS:
        raise ValueError(f"unknown observation {observation!r}; choose one of {OBSERVATIONS}")
    if observation == "full":
        return [n_levels**i for i in range(n_agents)]
    if observation == "partial":
        return [1] + [n_levels] * (n_agents - 1)
    return [1] * n_agents


def context_index(
    chosen: NDArray[np.int64], agent: int, n_levels: int, observation: str
) -> NDArray[np.int64]:
    """Context of ``agent`` given the level indices ``chosen[..., :agent]`` of its predecessors.

    ``"full"`` encodes ``(k_0, ..., k_{i-1})`` in base ``K`` (``k_0`` most significant, as in a
    C-ordered table of shape ``(K,) * i``); ``"partial"`` is ``k_{i-1}``; ``"none"`` is 0.
    """
    zeros = np.zeros(chosen.shape[:-1], dtype=np.int64)
    if agent == 0 or observation == "none":
        return zeros
    if observation == "partial":
        return chosen[..., agent - 1].astype(np.int64)
    weights = n_levels ** np.arange(agent - 1, -1, -1)
    return (chosen[..., :agent] * weights).sum(axis=-1).astype(np.int64)


@dataclass
class ScalarResult:
    """Outcome of :func:`play_scalar`.

    Attributes:
        levels: The grid of contribution levels, shape ``(K,)``.
        observation: The context each bandit conditioned on.
        chosen: Level index played, shape ``(rounds, runs, n)``.
        rewards: Raw (unscaled) mechanism payoffs, shape ``(rounds, runs, n)``.
        learners: One bandit per agent.
    """

    levels: NDArray[np.float64]
    observation: str
    chosen: NDArray[np.int64]
    rewards: NDArray[np.float64]
    learners: list[Bandit] = field(repr=False)

    def greedy_path(self) -> NDArray[np.int64]:
        """Level indices along each run's current greedy policy, shape ``(runs, n)``.

        Agent 0 plays its greedy arm, agent 1 its greedy arm in the context that creates, and so
        on: the outcome the learners would reach if they stopped exploring now.
        """
        runs, n = self.chosen.shape[1], len(self.learners)
        path = np.zeros((runs, n), dtype=np.int64)
        for i, learner in enumerate(self.learners):
            ctx = context_index(path, i, self.levels.size, self.observation)
            path[:, i] = learner.greedy(ctx)
        return path

    def greedy_table(self, agent: int) -> NDArray[np.int64]:
        """Agent ``agent``'s greedy level per context, shape ``(runs,) + (K,) * agent`` for
        ``"full"`` observation (comparable with ``solve_spne(...).policy[agent]``)."""
        greedy = self.learners[agent].greedy()
        if self.observation != "full":
            return greedy
        return greedy.reshape((greedy.shape[0],) + (self.levels.size,) * agent)

    def mean_level(self, window: int = 1) -> NDArray[np.float64]:
        """Contribution played, averaged over runs and a trailing moving window of rounds,
        shape ``(rounds - window + 1, n)``: the learning curve."""
        played = self.levels[self.chosen].mean(axis=1)
        kernel = np.ones(window) / window
        curves = [np.convolve(played[:, i], kernel, "valid") for i in range(played.shape[1])]
        return np.stack(curves, axis=-1)


def play_scalar(
    algorithm: str,
    mechanism: str | Mechanism = "mac-spgg",
    *,
    n_agents: int = 3,
    levels: int | ArrayLike = 5,
    observation: str | None = None,
    rounds: int = 5000,
    runs: int = 8,
    seed: int = 0,
    mechanism_params: dict[str, float] | None = None,
    bandit_options: dict[str, float] | None = None,
) -> ScalarResult:
    """Train one independent bandit per agent on the scalar game.

    Args:
        algorithm: ``"epsilon-greedy"``, ``"ucb1"``, ``"thompson"`` or ``"exp3"``.
        mechanism: Mechanism name or instance.
        n_agents: Number of agents.
        levels: Number of evenly spaced levels in [0, 1] (``K``), or the grid itself.
        observation: ``"full"``, ``"partial"`` or ``"none"``; default ``"full"`` for a
            sequential mechanism, ``"none"`` for the simultaneous classic PGG.
        rounds: Episodes each run plays.
        runs: Independent replications, vectorised.
        seed: Seeds agent i's bandit with ``seed * 1000 + i``.
        mechanism_params: Parameters for a mechanism given by name.
        bandit_options: Options for the bandit (``epsilon``, ``c``, ``gamma``, ``discount``...);
            default :data:`SCALAR_OPTIONS` for the algorithm.

    Returns:
        Every play, every payoff and the trained learners.
    """
    mech = make_mechanism(mechanism, **(mechanism_params or {}))
    grid = np.linspace(0.0, 1.0, levels) if np.ndim(levels) == 0 else np.asarray(levels, float)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"levels must be an int >= 2 or a 1-D grid, got {levels!r}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    obs = observation or ("full" if mech.sequential else "none")
    k = grid.size
    options = bandit_options
    if options is None:
        options = SCALAR_OPTIONS.get(algorithm.lower(), {})
    learners = [
        make_bandit(algorithm, k, contexts, runs, seed * 1000 + i, **options)
        for i, contexts in enumerate(context_counts(n_agents, k, obs))
    ]
    low, high = reward_bounds(mech, n_agents, grid)
    chosen = np.zeros((rounds, runs, n_agents), dtype=np.int64)
    rewards = np.zeros((rounds, runs, n_agents))
    for t in range(rounds):
        ctxs = []
        for i, learner in enumerate(learners):
            ctxs.append(context_index(chosen[t], i, k, obs))
            chosen[t, :, i] = learner.select(ctxs[i])
        rewards[t] = mech(grid[chosen[t]]).total
        scaled = scale_rewards(rewards[t], low, high)
        for i, learner in enumerate(learners):
            learner.update(ctxs[i], chosen[t, :, i], scaled[:, i])
    return ScalarResult(grid, obs, chosen, rewards, learners)


class BanditLearner:
    """Independent contextual bandits on the scalar game, one per agent: a
    :class:`~spgg_env.learner.Learner`, the same learners as :func:`play_scalar` driven through
    the env.

    Agent i's bandit keeps one arm table per context, the levels of the predecessors it sees,
    read back from its observation (``k_j = round(c_j * (K - 1))`` for each visible ``j``,
    encoded in base ``K``, first visible most significant: under full observation the same index
    as :func:`context_index`). It learns from its episode reward scaled into [0, 1] with the
    exact bounds of :func:`reward_bounds` (the learner reads the env's mechanism for them, as
    :func:`play_scalar` does). ``act(..., greedy=True)`` plays :meth:`Bandit.greedy`.

    Args:
        env: A scalar game with ``levels=K`` (a ``Discrete(K)`` action), e.g.
            ``spgg_env.aec_env(task="scalar", levels=4, observation="full")``.
        seed: Agent i's bandit is seeded ``seed * 1000 + i``.
        algorithm: ``"epsilon-greedy"``, ``"ucb1"``, ``"thompson"`` or ``"exp3"``.
        options: Bandit options; default :data:`SCALAR_OPTIONS` for the algorithm.
        runs: Independent replications in one object (vectorised): env copy ``b`` of every
            batch belongs to run ``b % runs`` and no statistic is shared between runs (they
            share each agent's random generator). Batches must be a multiple of ``runs``.

    Raises:
        ValueError: If the game has no discrete levels, or for a bad algorithm or option.
    """

    def __init__(
        self,
        env: Any,
        *,
        seed: int,
        algorithm: str = "thompson",
        options: dict[str, float] | None = None,
        runs: int = 1,
    ) -> None:
        game = env.unwrapped
        if getattr(game, "levels", None) is None:
            raise ValueError("BanditLearner needs the scalar game with discrete levels=K")
        self.agents = list(game.possible_agents)
        self.n, self.k = game.n_agents, game.levels
        self.runs = runs
        self.bounds = reward_bounds(game.mechanism, self.n, np.linspace(0.0, 1.0, self.k))
        if options is None:
            options = SCALAR_OPTIONS.get(algorithm.lower(), {})
        counts = context_counts(self.n, self.k, game.observation_mode)
        self.bandits = {
            agent: make_bandit(algorithm, self.k, contexts, runs, seed * 1000 + i, **options)
            for i, (agent, contexts) in enumerate(zip(self.agents, counts, strict=True))
        }

    def contexts(self, observations: Sequence[Any]) -> NDArray[np.int64]:
        """Context index of each observation: its visible predecessors' levels in base K."""
        obs = np.asarray(observations, dtype=np.float64).reshape(-1, 3 * self.n)
        levels = np.rint(obs[:, : self.n] * (self.k - 1)).astype(np.int64)
        seen = obs[:, self.n : 2 * self.n] > 0.5
        later = np.cumsum(seen[:, ::-1], axis=1)[:, ::-1] - seen  # visible ones after j
        return np.where(seen, levels * self.k**later, 0).sum(axis=1)

    def _chunks(self, size: int) -> range:
        if size % self.runs:
            raise ValueError(f"a batch of {size} env copies is not a multiple of runs={self.runs}")
        return range(0, size, self.runs)

    def act(self, agent: str, observations: Sequence[Any], *, greedy: bool = False) -> list[int]:
        """One level index per observation (see :class:`~spgg_env.learner.Learner`)."""
        bandit, ctx = self.bandits[agent], self.contexts(observations)
        arms = np.empty(ctx.size, dtype=np.int64)
        for start in self._chunks(ctx.size):
            part = ctx[start : start + self.runs]
            arms[start : start + self.runs] = bandit.greedy(part) if greedy else bandit.select(part)
        return arms.tolist()

    def learn(self, episodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Update every agent's bandit with its scaled episode reward; return the mean rewards."""
        metrics = {}
        for agent, bandit in self.bandits.items():
            steps = [episode[agent] for episode in episodes]
            ctx = self.contexts([step["observation"] for step in steps])
            arms = np.array([step["action"] for step in steps], dtype=np.int64)
            raw = np.array([step["reward"] for step in steps], dtype=np.float64)
            scaled = scale_rewards(raw, *self.bounds)
            for start in self._chunks(ctx.size):
                part = slice(start, start + self.runs)
                bandit.update(ctx[part], arms[part], scaled[part])
            metrics[f"{agent}/reward"] = float(raw.mean())
        return metrics


# --------------------------------------------------------------------------- text game
@dataclass
class TextResult:
    """Outcome of :func:`play_text`.

    Attributes:
        presets: Arm names, in arm order.
        chosen: Preset index per episode and agent, shape ``(episodes, n)``.
        rewards: Mechanism rewards (``step.reward``), shape ``(episodes, n)``; NaN for an
            episode that failed.
        scores: Evaluator scores of each contribution, shape ``(episodes, n)``.
        learners: One context-free bandit per agent.
        episodes: The episodes, as the engine played them.
    """

    presets: list[str]
    chosen: NDArray[np.int64]
    rewards: NDArray[np.float64]
    scores: NDArray[np.float64]
    learners: list[Bandit] = field(repr=False)
    episodes: list[Any] = field(default_factory=list, repr=False)

    def greedy_presets(self) -> list[str]:
        """Each agent's currently preferred preset."""
        return [self.presets[int(learner.greedy()[0, 0])] for learner in self.learners]


class PresetBandits:
    """Independent context-free bandits over generation presets, one per agent: a policy of the
    episode engine and a learner (``act(agent, observations, *, greedy=False)`` picks a preset
    per observation and asks the engine to generate with it; ``learn(episodes)`` pays each
    agent's bandit its episode reward, scaled into [0, 1] with the text-game bounds of
    :func:`reward_bounds`).

    Args:
        game: The text game (its mechanism and number of agents).
        algorithm: Bandit algorithm name.
        presets: Arm name -> generation parameters.
        seed: Agent i's bandit draws from the stream ``(seed, LEARNER, "bandit", i)``.
        bandit_options: Extra options for the bandits.
        system_prompt: Optional system message put before every prompt.
        backend: The engine key of the backend that generates.

    Raises:
        ValueError: With fewer than 2 presets.
    """

    def __init__(self, game: GameSpec, algorithm: str, presets: Mapping[str, GenerationParams],
                 *, seed: int = 0, bandit_options: Mapping[str, float] | None = None,
                 system_prompt: str | None = None, backend: str = "model") -> None:
        from spgg_env.agents.llm_agent import LLMAgent

        self.names = list(presets)
        if len(self.names) < 2:
            raise ValueError(f"need at least 2 presets to choose among, got {self.names}")
        self.arms = [presets[name] for name in self.names]
        self.n_agents = game.n_agents
        self.bounds = reward_bounds(make_mechanism(game.mechanism, **game.mechanism_params),
                                    self.n_agents)
        self.bandits = {
            f"agent_{i}": make_bandit(algorithm, len(self.arms), 1, 1,
                                      derive_seed(seed, LEARNER, "bandit", i),
                                      **(bandit_options or {}))
            for i in range(self.n_agents)
        }
        self.agents = {a: LLMAgent(a, None, system_prompt=system_prompt or "",
                                   n_agents=self.n_agents) for a in self.bandits}
        self.backend = backend

    def act(self, agent: str, observations: Sequence[Mapping[str, Any]], *,
            greedy: bool = False) -> list[Request]:
        """One request per observation with the preset ``agent``'s bandit picks (its best so
        far with ``greedy``); the arm travels in ``meta["arm"]``."""
        bandit, zero = self.bandits[agent], np.zeros(1, dtype=np.int64)
        out = []
        for observation in observations:
            arm = int(bandit.greedy()[0, 0] if greedy else bandit.select(zero)[0])
            out.append(Request(self.agents[agent].chat(observation), self.arms[arm],
                               role=agent, backend=self.backend, meta={"arm": arm}))
        return out

    def learn(self, episodes: Sequence[Any]) -> dict[str, float]:
        """Update each agent's bandit with its scaled reward in every finished episode."""
        zero = np.zeros(1, dtype=np.int64)
        rewards: dict[str, list[float]] = {agent: [] for agent in self.bandits}
        for episode in episodes:
            if not episode.finished:
                continue
            for step in episode.steps:
                scaled = scale_rewards(np.array([step.reward]), *self.bounds)
                arm = np.array([step.request.meta["arm"]], dtype=np.int64)
                self.bandits[step.agent].update(zero, arm, scaled)
                rewards[step.agent].append(float(step.reward))
        return {f"{agent}/reward": float(np.mean(r)) for agent, r in rewards.items() if r}


def play_text(
    game: GameSpec,
    backend: Backend,
    algorithm: str = "ucb1",
    *,
    episodes: int = 20,
    presets: Mapping[str, GenerationParams] | None = None,
    seed: int = 0,
    bandit_options: Mapping[str, float] | None = None,
    system_prompt: str | None = None,
) -> TextResult:
    """Bandits over generation presets in the text game, one per agent, one preset per episode,
    played on the episode engine (each bandit learns after every episode).

    Episode e resets with ``episode_seed(seed, e)`` (a problem drawn from its seed) and samples
    with ``generation_seed(seed, e, i)``.

    Args:
        game: The text game (any task, PO or FO).
        backend: Generates the agents' contributions.
        algorithm: Bandit algorithm name.
        episodes: Episodes to play (one problem each).
        presets: Arm name -> generation parameters (default :data:`PRESETS`).
        seed: Root seed of the bandits, the episodes and the sampling.
        bandit_options: Extra options for the bandit.
        system_prompt: Optional system message put before every prompt.

    Returns:
        Every choice, reward and score, the trained learners and the episodes.
    """
    from spgg_env.agents.engine import Engine
    from spgg_env.agents.episodes import EpisodeRunner

    policy = PresetBandits(game, algorithm, presets or PRESETS, seed=seed,
                           bandit_options=bandit_options, system_prompt=system_prompt)
    runner = EpisodeRunner(game, policy, Engine({policy.backend: backend}, seed=seed))
    n = game.n_agents
    chosen = np.zeros((episodes, n), dtype=np.int64)
    rewards = np.full((episodes, n), np.nan)
    scores = np.full((episodes, n), np.nan)
    played = []
    for e in range(episodes):
        (episode,) = runner.run(1, seed=seed, first_episode=e, sweep=False)
        policy.learn([episode])
        played.append(episode)
        for step in episode.steps:
            i = step.position
            chosen[e, i] = step.request.meta["arm"]
            if episode.finished:
                rewards[e, i], scores[e, i] = step.reward, step.info.get("score", np.nan)
    return TextResult(policy.names, chosen, rewards, scores, list(policy.bandits.values()),
                      played)
