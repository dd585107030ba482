"""How a problem and the visible predecessors' contributions are rendered for an agent.

One template per *prompt style*, shared by every task; a task adds its own ``instruction``.
An instruction of several lines ends with its *answer-format line* (arith: "End with 'The
answer is N', N a whole number."), the one format a contribution must commit to; a one-line
instruction has none. Agents add their own role or system prompt on top (see
``spgg_env.agents``).

* ``"default"``: the task's instruction, the task, the visible contributions, and the agent's
  role in the game. What the benchmark and the paper's setting use.
* ``"compact"``: the task, the visible contributions and the answer-format line only (no
  other instruction, no role). For very small models, which the scaffolding confuses. The
  format line is what lets them meet the strict answer format: on 64 one-step ``arith``
  problems (greedy, 32 tokens) the embedded SmolLM2-135M, as the first agent, commits to the
  right answer on 2 (3.1%) with the line and on 0 without it, though it computes 17 of them
  (26.6%) right without committing (``python examples/prompt_styles.py --threads 1``; the
  candidate lines with ``--agents 1 --styles compact --format-line ...``, ``docs/tasks.md``).
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

#: How the default style shows the visible contributions.
DEFAULT_CONTEXT = "\n### Contributions so far\n{blocks}"
DEFAULT_BLOCK = "Agent {number} wrote:\n{text}\n"

COMPACT_TEMPLATE = "{question}{context}{format_line}"
COMPACT_BLOCK = "\n\nAnother agent answered:\n{text}"
COMPACT_FORMAT_LINE = "\n\n{line}"

#: The prompt styles an env accepts (``aec_env(..., prompt_style=...)``).
PROMPT_STYLES = ("default", "compact")


def format_line(instruction: str) -> str:
    """The answer-format line of an instruction: its last line if it has several, else ``""``."""
    lines = [line.strip() for line in instruction.strip().splitlines() if line.strip()]
    return lines[-1] if len(lines) > 1 else ""


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
        line = format_line(instruction)
        return COMPACT_TEMPLATE.format(
            question=question.strip(),
            context="".join(COMPACT_BLOCK.format(text=text.strip()) for _, text in visible),
            format_line=COMPACT_FORMAT_LINE.format(line=line) if line else "",
        )
    if style != "default":
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    blocks = [DEFAULT_BLOCK.format(number=pos + 1, text=text.strip()) for pos, text in visible]
    return TEMPLATE.format(
        instruction=instruction.strip(),
        question=question.strip(),
        context=DEFAULT_CONTEXT.format(blocks="\n".join(blocks)) if visible else "",
        agent_number=position + 1,
        n_agents=n_agents,
        turn_hint=LATER_HINT if visible else FIRST_HINT,
    )


def template_hash(style: str = "default") -> str:
    """SHA-256 of every template piece of one prompt style, for result files.

    The task's instruction (and so its format line) is not part of it: the task's version
    covers that.
    """
    if style == "compact":
        pieces = [COMPACT_TEMPLATE, COMPACT_BLOCK, COMPACT_FORMAT_LINE]
    else:
        pieces = [TEMPLATE, DEFAULT_CONTEXT, DEFAULT_BLOCK, FIRST_HINT, LATER_HINT]
    return hashlib.sha256("\x00".join(pieces).encode()).hexdigest()
