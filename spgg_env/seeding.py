"""The one seed derivation of the package: every random stream comes from a root seed and a path.

A run has one root seed (the user's ``--seed``). Every random stream it needs (the problem an
episode draws, the sampling of one generation, a learner's minibatch order) gets its own seed

    derive_seed(root, *path) = SeedSequence([root, *encode(path)]).generate_state(2) as 63 bits

where ``path`` names the stream, e.g. ``(EPISODE, 12)`` for episode 12 or
``(GENERATION, 12, 2, 0)`` for agent 2's first generation in episode 12. Labels are small
integers (:data:`EPISODE`, :data:`GENERATION`...) or strings (hashed with SHA-256 to 32-bit
words), so adding a new stream never shifts another one. The streams of different paths are
statistically independent (numpy's ``SeedSequence`` guarantees), and a stream's seed depends on
nothing else: not on batching, scheduling, worker count or the order in which episodes finish.
That is what makes a run reproducible when it is spread over a continuous batch, several
processes or a Ray cluster.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Stream labels (first element of a path).
EPISODE = 1
GENERATION = 2
LEARNER = 3
METHOD = 4

_MASK_63 = (1 << 63) - 1


def _words(label: int | str) -> list[int]:
    """A path element as non-negative 32-bit words (strings via SHA-256)."""
    if isinstance(label, bool) or not isinstance(label, int | str | np.integer):
        raise TypeError(f"seed path elements must be int or str, got {label!r}")
    if isinstance(label, str):
        digest = hashlib.sha256(label.encode()).digest()
        return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    value = int(label)
    if value < 0:
        raise ValueError(f"seed path integers must be >= 0, got {value}")
    words = []
    while True:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            return words


def derive_seed(root: int, *path: int | str) -> int:
    """The seed of one random stream: ``root`` refined by ``path`` (see the module docstring).

    Args:
        root: The run's seed (an integer >= 0).
        *path: Labels naming the stream (integers >= 0 or strings).

    Returns:
        An integer in ``[0, 2**63)``, usable by numpy, torch and Python's ``random``.

    Raises:
        TypeError: If an element is not an int or a str.
        ValueError: If an integer is negative.
    """
    entropy: list[int] = _words(root)
    for label in path:
        words = _words(label)
        entropy += [len(words), *words]  # length-prefixed: (1, 23) never equals (1, 2, 3)
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return (int(state[0]) | int(state[1]) << 32) & _MASK_63


def episode_seed(root: int, episode: int) -> int:
    """The seed episode ``episode`` resets its env with."""
    return derive_seed(root, EPISODE, episode)


def generation_seed(root: int, episode: int, position: int, call: int = 0) -> int:
    """The sampling seed of the ``call``-th generation of the agent at ``position``."""
    return derive_seed(root, GENERATION, episode, position, call)


def rng(root: int, *path: int | str) -> np.random.Generator:
    """A numpy generator for the stream ``path`` of ``root``."""
    return np.random.default_rng(derive_seed(root, *path))
