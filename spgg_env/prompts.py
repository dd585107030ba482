"""How a problem and the visible predecessors' contributions are rendered for an agent.

One template per *prompt style*, shared by every task; a task adds its own ``instruction``
(the answer format). Agents add their own role or system prompt on top (see
``spgg_env.agents``).

* ``"default"``: the task's instruction, the task, the visible contributions, and the agent's
  role in the game. What the benchmark and the paper's setting use.
* ``"compact"``: only the task and the visible contributions, no instruction and no role.
  For very small models, which the scaffolding confuses: on 64 one-step ``arith`` problems
  the embedded SmolLM2-135M, as the first agent, answers 27% of the bare questions right
  (greedy, 32 tokens) and 11% of the same questions in the default template
  (``python examples/prompt_styles.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

TEMPLATE = """{instruction}

### Task
{question}
{context}
### Your turn
You are agent {agent_number} of {n_agents}. {turn_hint}"""

FIRST_HINT = "You are the first to contribute: solve the task."
LATER_HINT = (
    "Build on the contributions above: check them, fix any mistake, and give your own "
    "complete answer."
)

COMPACT_TEMPLATE = "{question}{context}"

#: The prompt styles an env accepts (``aec_env(..., prompt_style=...)``).
PROMPT_STYLES = ("default", "compact")


def render(
    *,
    instruction: str,
    question: str,
    visible: Sequence[tuple[int, str]],
    position: int,
    n_agents: int,
    style: str = "default",
) -> str:
    """Render the prompt of the agent at ``position`` (0-based) in one of :data:`PROMPT_STYLES`."""
    if style == "compact":
        blocks = [f"\n\nAnother agent answered:\n{text.strip()}" for _, text in visible]
        return COMPACT_TEMPLATE.format(question=question.strip(), context="".join(blocks))
    if style != "default":
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    if visible:
        blocks = [f"Agent {pos + 1} wrote:\n{text.strip()}\n" for pos, text in visible]
        context = "\n### Contributions so far\n" + "\n".join(blocks)
    else:
        context = ""
    return TEMPLATE.format(
        instruction=instruction.strip(),
        question=question.strip(),
        context=context,
        agent_number=position + 1,
        n_agents=n_agents,
        turn_hint=LATER_HINT if visible else FIRST_HINT,
    )


def template_hash(style: str = "default") -> str:
    """SHA-256 of one prompt style's template, for result files."""
    if style == "compact":
        return hashlib.sha256(COMPACT_TEMPLATE.encode()).hexdigest()
    return hashlib.sha256((TEMPLATE + FIRST_HINT + LATER_HINT).encode()).hexdigest()
