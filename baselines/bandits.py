"""Tabular multi-armed bandits, vectorised over independent runs and contexts.

Every learner here holds one table of arm statistics per ``(run, context)``: ``runs`` independent
replications (seeds) share one object so that a learning curve with error bands costs one numpy
call per round, and ``contexts`` lets one agent keep a separate bandit per observed situation
(a tabular contextual bandit). A context-free bandit is ``contexts=1``.

Each round every run plays exactly one arm in one context::

    arms = bandit.select(ctx)          # ctx: int array (runs,) -> arms: int array (runs,)
    bandit.update(ctx, arms, rewards)  # rewards in [0, 1]

Rewards must lie in [0, 1] (see :func:`scale_rewards`); UCB1, Thompson sampling and EXP3 rely on
it.

Every learner takes ``discount`` (lambda in (0, 1], default 1 = the textbook algorithm). Below 1,
each update of a context first multiplies that context's statistics (pull counts, reward sums,
Beta successes, EXP3 log-weights) by lambda, so old rewards fade with an effective memory of
``1 / (1 - lambda)`` plays (discounted UCB, Garivier & Moulines 2011; discounted Thompson
sampling, Raj & Kalyani 2017). Independent learners in a game face a non-stationary problem --
the other agents are learning too -- and without forgetting, rewards earned while the others were
still exploring can pin an agent to a wrong arm for a very long time.

Algorithms (n_a = pulls of arm a, mu_a = its mean reward, t = pulls in the context):

* :class:`EpsilonGreedy` -- explore uniformly with probability ``eps_t = max(eps_min,
  eps / (1 + decay * t))`` (t = undiscounted plays in the context), else play ``argmax_a mu_a``
  (untried arms first).
* :class:`UCB1` (Auer et al. 2002) -- play every arm once, then ``argmax_a mu_a + c * sqrt(2 ln t /
  n_a)``.
* :class:`ThompsonSampling` -- Beta-Bernoulli (Agrawal & Goyal 2012): a reward r in [0, 1] counts
  as a success with probability r; play ``argmax_a theta_a``, ``theta_a ~ Beta(1 + s_a, 1 + f_a)``.
* :class:`EXP3` (Auer et al. 2002) -- ``p_a = (1 - g) w_a / sum w + g / K``; after playing arm a
  with reward r, ``log w_a += g * (r / p_a) / K``.

:meth:`Bandit.greedy` is each learner's current best guess (highest mean, highest Thompson posterior
mean, or highest EXP3 weight), the quantity a convergence check reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.int64]


def scale_rewards(rewards: ArrayLike, low: float, high: float) -> NDArray[np.float64]:
    """Map rewards from ``[low, high]`` into [0, 1]: ``(r - low) / (high - low)``, clipped.

    Raises:
        ValueError: If ``high <= low``.
    """
    if not high > low:
        raise ValueError(f"reward bounds must satisfy low < high, got low={low}, high={high}")
    scaled = (np.asarray(rewards, dtype=np.float64) - low) / (high - low)
    return np.clip(scaled, 0.0, 1.0)


class Bandit(ABC):
    """A table of ``runs x contexts`` independent K-armed bandits.

    Args:
        n_arms: Number of arms K (>= 2).
        contexts: Number of contexts per run (>= 1).
        runs: Number of independent replications (>= 1).
        seed: Seed of the generator this object owns.
        discount: Forgetting factor lambda in (0, 1] applied to a context's statistics at each
            of its updates (1 = no forgetting).
        **options: The algorithm's own options (see each subclass's ``_configure``).
    """

    #: Short name for plots and result files.
    name: str = "bandit"

    def __init__(
        self,
        n_arms: int,
        contexts: int = 1,
        runs: int = 1,
        seed: int | None = 0,
        *,
        discount: float = 1.0,
        **options: float,
    ):
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        self.discount = float(discount)
        sizes = (("n_arms", n_arms, 2), ("contexts", contexts, 1), ("runs", runs, 1))
        for label, value, low in sizes:
            if int(value) != value or value < low:
                raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
        self.n_arms, self.contexts, self.runs = int(n_arms), int(contexts), int(runs)
        self.rng = np.random.default_rng(seed)
        shape = (self.runs, self.contexts, self.n_arms)
        self.counts = np.zeros(shape, dtype=np.float64)
        self.sums = np.zeros(shape, dtype=np.float64)
        #: Undiscounted number of updates of each ``(run, context)``.
        self.plays = np.zeros(shape[:2], dtype=np.int64)
        self._run_index = np.arange(self.runs)
        self._configure(**options)

    def _configure(self) -> None:  # noqa: B027 - optional hook
        """Read and check the algorithm's options; set up its extra statistics."""

    # ---------------------------------------------------------------- public
    def select(self, ctx: ArrayLike) -> IntArray:
        """Choose one arm per run in context ``ctx[run]`` (an int array of shape ``(runs,)``)."""
        return self._select(self._check_ctx(ctx))

    def update(self, ctx: ArrayLike, arms: ArrayLike, rewards: ArrayLike) -> None:
        """Record that each run played ``arms[run]`` in ``ctx[run]`` and got ``rewards[run]``.

        Raises:
            ValueError: If a reward is outside [0, 1] or an arm is out of range.
        """
        ctx = self._check_ctx(ctx)
        arms = np.asarray(arms, dtype=np.int64)
        rewards = np.asarray(rewards, dtype=np.float64)
        if arms.shape != (self.runs,) or rewards.shape != (self.runs,):
            raise ValueError(
                f"arms and rewards must have shape ({self.runs},), "
                f"got {arms.shape} and {rewards.shape}"
            )
        if arms.min() < 0 or arms.max() >= self.n_arms:
            raise ValueError(f"arms must be in [0, {self.n_arms}), got {arms.tolist()}")
        if not (np.all(rewards >= 0.0) and np.all(rewards <= 1.0)):
            raise ValueError(
                f"rewards must be in [0, 1] (use scale_rewards), got min {rewards.min()}, "
                f"max {rewards.max()}"
            )
        if self.discount < 1.0:
            for stats in self._statistics():
                stats[self._run_index, ctx] *= self.discount
        idx = (self._run_index, ctx, arms)
        self.plays[self._run_index, ctx] += 1
        self.counts[idx] += 1
        self.sums[idx] += rewards
        self._learn(idx, rewards)

    def means(self, ctx: ArrayLike | None = None) -> NDArray[np.float64]:
        """Empirical mean reward per ``(run, context, arm)``; 0 for unplayed arms.

        With ``ctx`` (an int array ``(runs,)``): only each run's context, shape ``(runs, K)``.
        """
        counts, sums = self._at(self.counts, ctx), self._at(self.sums, ctx)
        return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)

    def greedy(self, ctx: ArrayLike | None = None) -> IntArray:
        """The arm each ``(run, context)`` currently believes best, shape ``(runs, contexts)``;
        with ``ctx``, only each run's context ``ctx[run]``, shape ``(runs,)``."""
        return self._preference(ctx).argmax(axis=-1)

    # --------------------------------------------------------------- helpers
    @abstractmethod
    def _select(self, ctx: IntArray) -> IntArray: ...

    def _learn(self, idx: tuple[IntArray, IntArray, IntArray], rewards: NDArray) -> None:  # noqa: B027
        """Algorithm-specific update beyond counts and sums (default: none)."""

    def _statistics(self) -> list[NDArray[np.float64]]:
        """The arrays that ``discount`` fades."""
        return [self.counts, self.sums]

    def _check_ctx(self, ctx: ArrayLike) -> IntArray:
        ctx = np.asarray(ctx, dtype=np.int64)
        if ctx.shape != (self.runs,):
            raise ValueError(f"ctx must have shape ({self.runs},), got {ctx.shape}")
        if ctx.min() < 0 or ctx.max() >= self.contexts:
            raise ValueError(f"contexts must be in [0, {self.contexts}), got {ctx.tolist()}")
        return ctx

    def _argmax_random_ties(self, values: NDArray[np.float64]) -> IntArray:
        """Row-wise argmax that breaks ties uniformly at random."""
        best = values >= values.max(axis=-1, keepdims=True)
        return (best * self.rng.random(values.shape)).argmax(axis=-1)

    def _table(self, array: NDArray, ctx: IntArray) -> NDArray:
        """The ``(runs, n_arms)`` slice of ``array`` for each run's context."""
        return array[self._run_index, ctx]

    def _at(self, array: NDArray, ctx: ArrayLike | None) -> NDArray:
        """``array`` whole (``ctx=None``) or its :meth:`_table` slice at ``ctx``."""
        return array if ctx is None else self._table(array, self._check_ctx(ctx))

    def _preference(self, ctx: ArrayLike | None) -> NDArray[np.float64]:
        """Values whose argmax is the greedy arm (default: the empirical means)."""
        return self.means(ctx)


class EpsilonGreedy(Bandit):
    """Epsilon-greedy with a decaying exploration rate ``max(eps_min, eps / (1 + decay * t))``."""

    name = "epsilon-greedy"

    def _configure(
        self, epsilon: float = 0.2, decay: float = 0.01, epsilon_min: float = 0.01
    ) -> None:
        if not 0.0 <= epsilon_min <= epsilon <= 1.0 or decay < 0.0:
            raise ValueError(
                "need 0 <= epsilon_min <= epsilon <= 1 and decay >= 0, got "
                f"epsilon={epsilon}, epsilon_min={epsilon_min}, decay={decay}"
            )
        self.epsilon, self.decay, self.epsilon_min = epsilon, decay, epsilon_min

    def _select(self, ctx: IntArray) -> IntArray:
        t = self.plays[self._run_index, ctx]
        eps = np.maximum(self.epsilon_min, self.epsilon / (1.0 + self.decay * t))
        explore = self.rng.random(self.runs) < eps
        random_arms = self.rng.integers(0, self.n_arms, self.runs)
        tried = self._table(self.counts, ctx) > 0
        values = np.where(tried, self.means(ctx), np.inf)
        greedy = self._argmax_random_ties(values)
        return np.where(explore, random_arms, greedy)


class UCB1(Bandit):
    """UCB1: untried arms first, then ``argmax mu_a + c * sqrt(2 ln t / n_a)``."""

    name = "ucb1"

    def _configure(self, c: float = 1.0) -> None:
        if c < 0.0:
            raise ValueError(f"exploration coefficient c must be >= 0, got {c}")
        self.c = c

    def _select(self, ctx: IntArray) -> IntArray:
        n = self._table(self.counts, ctx)
        t = n.sum(axis=-1, keepdims=True)
        bonus = self.c * np.sqrt(2.0 * np.log(np.maximum(t, 1.0)) / np.maximum(n, 1.0))
        score = np.where(n > 0, self.means(ctx) + bonus, np.inf)
        return self._argmax_random_ties(score)


class ThompsonSampling(Bandit):
    """Beta-Bernoulli Thompson sampling with a uniform Beta(1, 1) prior and Bernoulli trials."""

    name = "thompson"

    def _configure(self) -> None:
        self.successes = np.zeros_like(self.sums)

    def _statistics(self) -> list[NDArray[np.float64]]:
        return [*super()._statistics(), self.successes]

    def _select(self, ctx: IntArray) -> IntArray:
        s = self._table(self.successes, ctx)
        f = self._table(self.counts, ctx) - s
        return self.rng.beta(1.0 + s, 1.0 + f).argmax(axis=-1)

    def _learn(self, idx: tuple[IntArray, IntArray, IntArray], rewards: NDArray) -> None:
        self.successes[idx] += self.rng.random(self.runs) < rewards

    def _preference(self, ctx: ArrayLike | None) -> NDArray[np.float64]:
        """The posterior mean ``(1 + s) / (2 + n)``."""
        return (1.0 + self._at(self.successes, ctx)) / (2.0 + self._at(self.counts, ctx))


class EXP3(Bandit):
    """EXP3 with exploration rate ``gamma``; weights kept in log space for stability."""

    name = "exp3"

    def _configure(self, gamma: float = 0.1) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.gamma = gamma
        self.log_weights = np.zeros_like(self.sums)
        self._played_probs = np.full((self.runs, self.n_arms), 1.0 / self.n_arms)

    def _statistics(self) -> list[NDArray[np.float64]]:
        return [*super()._statistics(), self.log_weights]

    def probabilities(self, ctx: ArrayLike) -> NDArray[np.float64]:
        """The EXP3 play distribution ``(runs, n_arms)`` in each run's context."""
        logw = self._table(self.log_weights, self._check_ctx(ctx))
        w = np.exp(logw - logw.max(axis=-1, keepdims=True))
        return (1.0 - self.gamma) * w / w.sum(axis=-1, keepdims=True) + self.gamma / self.n_arms

    def _select(self, ctx: IntArray) -> IntArray:
        probs = self.probabilities(ctx)
        self._played_probs = probs
        u = self.rng.random((self.runs, 1))
        arms = (probs.cumsum(axis=-1) < u).sum(axis=-1)
        return np.minimum(arms, self.n_arms - 1)

    def _learn(self, idx: tuple[IntArray, IntArray, IntArray], rewards: NDArray) -> None:
        p = self._played_probs[self._run_index, idx[2]]
        self.log_weights[idx] += self.gamma * (rewards / p) / self.n_arms

    def _preference(self, ctx: ArrayLike | None) -> NDArray[np.float64]:
        """The log-weights."""
        return self._at(self.log_weights, ctx)


ALGORITHMS: dict[str, type[Bandit]] = {
    cls.name: cls for cls in (EpsilonGreedy, UCB1, ThompsonSampling, EXP3)
}


def make_bandit(name: str, n_arms: int, contexts: int = 1, runs: int = 1, seed: int | None = 0,
                **options: float) -> Bandit:
    """Build a bandit by name (``"epsilon-greedy"``, ``"ucb1"``, ``"thompson"``, ``"exp3"``).

    Raises:
        ValueError: For an unknown name or option.
    """
    key = name.lower()
    if key not in ALGORITHMS:
        raise ValueError(f"unknown bandit {name!r}; choose one of {sorted(ALGORITHMS)}")
    try:
        return ALGORITHMS[key](n_arms, contexts, runs, seed, **options)
    except TypeError as err:
        raise ValueError(f"bad option for bandit {key!r}: {err}") from None
