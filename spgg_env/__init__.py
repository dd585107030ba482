"""spgg_env: the sequential public goods game (MAC-SPGG) as PettingZoo environments.

>>> import spgg_env
>>> env = spgg_env.aec_env(task="arith", n_agents=3, observation="partial")
>>> env.reset(seed=0)

Importing the package registers every game with PettingZoo (``spgg/Arith-v1``,
``spgg/HumanEval-v1``, ``spgg/MMLU-v1``, ``spgg/GSM8K-v1``, ``spgg/SummEval-v1``,
``spgg/Scalar-v0``).
"""

from spgg_env.env import SPGGEnv, aec_env, env, parallel_env, raw_env
from spgg_env.mechanism import make_mechanism
from spgg_env.registration import register_envs
from spgg_env.scalar_env import ScalarSPGGEnv
from spgg_env.tasks import Problem, Score, Task, make_task

__version__ = "0.1.0"

register_envs()

__all__ = [
    "Problem",
    "SPGGEnv",
    "ScalarSPGGEnv",
    "Score",
    "Task",
    "__version__",
    "aec_env",
    "env",
    "make_mechanism",
    "make_task",
    "parallel_env",
    "raw_env",
]
