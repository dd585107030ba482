"""How a problem and the visible predecessors' contributions are rendered for an agent.

One template for every task; a task adds its own ``instruction`` (the answer format).
Agents add their own role or system prompt on top (see ``spgg_env.agents``).
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


def render(
    *,
    instruction: str,
    question: str,
    visible: Sequence[tuple[int, str]],
    position: int,
    n_agents: int,
) -> str:
    """Render the prompt of the agent at ``position`` (0-based)."""
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


def template_hash() -> str:
    """SHA-256 of the prompt template, for result files."""
    return hashlib.sha256((TEMPLATE + FIRST_HINT + LATER_HINT).encode()).hexdigest()
