"""The SummEval judge: an LLM rates a summary of an article on four dimensions, 1-5.

- :mod:`spgg_env.judge.core`: :class:`Judge` (guard, model, cache) and :class:`JudgeScore`;
- :mod:`spgg_env.judge.prompt`: the rating prompt, the summary delimited as data;
- :mod:`spgg_env.judge.scorer`: the local model with the article's KV cache reused, or a server;
- :mod:`spgg_env.judge.guard`: the rules a summary must pass before the model scores it;
- :mod:`spgg_env.judge.head`: the learned linear head on the model's hidden states;
- :mod:`spgg_env.judge.cache`: the JSONL cache that many processes can share;
- :mod:`spgg_env.judge.redteam`: the attacks the judge is tested against.

``Judge()`` is the embedded SmolLM2-135M-Instruct used zero-shot (G-Eval style);
``Judge(method="head")`` adds the head trained on SummEval (docs/judge.md compares them).
"""

from spgg_env.judge.core import METHODS, Judge, JudgeScore, expected_score
from spgg_env.judge.guard import GuardReport, inspect_summary
from spgg_env.judge.head import LinearHead
from spgg_env.judge.prompt import CRITERIA, DIMENSIONS, SCORE_TOKENS
from spgg_env.judge.scorer import OpenAIScorer, TransformersScorer, model_identity

__all__ = [
    "CRITERIA",
    "DIMENSIONS",
    "METHODS",
    "SCORE_TOKENS",
    "GuardReport",
    "Judge",
    "JudgeScore",
    "LinearHead",
    "OpenAIScorer",
    "TransformersScorer",
    "expected_score",
    "inspect_summary",
    "model_identity",
]
