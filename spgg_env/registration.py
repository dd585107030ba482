"""Registration of every game with PettingZoo's registry (done on ``import spgg_env``).

After ``import spgg_env``, ``pettingzoo.make("aec", "spgg/Arith-v1")`` builds the same env as
``spgg_env.aec_env(task="arith")`` and ``pettingzoo.make("parallel", "spgg/Arith-v1")`` the same
as ``spgg_env.parallel_env(task="arith")``. Entry points are ``"module:attr"`` strings, so
registering imports no task's heavy dependencies.
"""

from __future__ import annotations

import pettingzoo

from spgg_env.tasks import TASKS

#: Version of the text games' ids (see the version history in :mod:`spgg_env.env`).
TEXT_VERSION = "v1"
AEC_ENTRY_POINT = "spgg_env.env:aec_env"
PARALLEL_ENTRY_POINT = "spgg_env.env:parallel_env"


def env_ids() -> dict[str, str]:
    """PettingZoo id -> task name, e.g. ``{"spgg/Arith-v1": "arith", ...}``."""
    ids = {f"spgg/{pretty}-{TEXT_VERSION}": name for name, (_, pretty) in TASKS.items()}
    ids["spgg/Scalar-v0"] = "scalar"
    return ids


def register_envs() -> list[str]:
    """Register every game in PettingZoo's AEC and parallel registries (idempotent).

    Returns:
        The ids registered by this call (empty when already registered).
    """
    added = []
    for env_id, task in env_ids().items():
        if env_id in pettingzoo.aec_registry:
            continue
        pettingzoo.register("aec", env_id, entry_point=AEC_ENTRY_POINT, kwargs={"task": task})
        pettingzoo.register(
            "parallel", env_id, entry_point=PARALLEL_ENTRY_POINT, kwargs={"task": task}
        )
        added.append(env_id)
    return added
