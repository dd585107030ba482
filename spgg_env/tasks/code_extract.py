"""Read a Python solution out of a model's free-form contribution.

Models answer a HumanEval prompt in many shapes: a fenced ```` ```python ```` block (or several),
raw code with prose around it, a whole function (often repeating the prompt's signature and
docstring) or only the body that completes the prompt, sometimes with an
``if __name__ == "__main__":`` demo. :func:`extract_completion` turns any of these into a
*completion*: text that, appended to the prompt, gives a program defining the entry point.

* A **whole function** (a top-level ``def <entry_point>``) is appended after the prompt, so the
  prompt's imports and helper functions stay available and the new definition wins.
* A **body** is re-indented under the prompt's signature.

Demo blocks under ``if __name__ == "__main__":`` are removed. Code that does not compile is
reported as an error and never run.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from typing import Literal

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "pycon", "ipython"}
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)", re.MULTILINE)


@dataclass(frozen=True)
class Extraction:
    """A solution read out of a contribution.

    Attributes:
        code: The code as found in the text (``None`` when there was none).
        completion: What to append to the prompt (``None`` on error).
        kind: ``"function"`` (defines the entry point) or ``"body"`` (completes the prompt).
        error: Why no runnable completion could be made, or ``None``.
    """

    code: str | None
    completion: str | None
    kind: Literal["function", "body"] | None
    error: str | None = None


def find_code(text: str, entry_point: str | None = None) -> str | None:
    """Return the code in ``text``: the best fenced block, or the code part of raw text.

    Among fenced blocks tagged as Python (or untagged), the last one defining ``entry_point``
    wins, else the longest. Without fences, the text from the first line that starts like
    top-level code (``def``, ``import``, ``class``, a decorator) is used; if there is none,
    the whole text (a body completion).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    if blocks:
        python = [body for tag, body in blocks if tag in _PYTHON_TAGS] or [b for _, b in blocks]
        defining = [body for body in python if entry_point and _defines(body, entry_point)]
        chosen = defining[-1] if defining else max(python, key=len)
        return chosen.strip("\n") or None
    start = _CODE_START.search(text)
    code = text[start.start() :] if start else _drop_leading_prose(text)
    code = _drop_trailing_prose(code)
    return code.strip("\n") or None


def extract_completion(text: str, prompt: str, entry_point: str) -> Extraction:
    """Turn a contribution into a completion of ``prompt``; never raises on a ``str``.

    Args:
        text: The contribution.
        prompt: The problem's prompt (signature and docstring of ``entry_point``).
        entry_point: Name of the function the tests call.
    """
    if not isinstance(text, str) or not text.strip():
        return Extraction(None, None, None, "empty contribution: no code found")
    code = find_code(text, entry_point)
    if code is None:
        return Extraction(None, None, None, "no code found in the contribution")
    if _defines(code, entry_point):
        completion = "\n\n" + _strip_main_blocks(textwrap.dedent(code)) + "\n"
        return _checked(code, prompt, [completion], "function")
    return _checked(code, prompt, _body_candidates(code), "body")


def _defines(code: str, entry_point: str) -> bool:
    """True if ``code`` has a top-level ``def entry_point`` (after dedenting)."""
    pattern = rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\("
    return re.search(pattern, textwrap.dedent(code), re.MULTILINE) is not None


def _body_candidates(code: str) -> list[str]:
    """Ways to indent a body under the prompt's signature, most likely first."""
    dedented = textwrap.dedent(code)
    lines = code.split("\n")
    candidates = [textwrap.indent(dedented, "    ") + "\n", code + "\n"]
    if len(lines) > 1 and not lines[0].startswith((" ", "\t")):
        # The first line lost its indentation (it continued the prompt's last line).
        candidates.append("    " + lines[0] + "\n" + "\n".join(lines[1:]) + "\n")
    return candidates


def _checked(code: str, prompt: str, candidates: list[str], kind: str) -> Extraction:
    """The first candidate that compiles after the prompt, or a syntax error."""
    error = "no candidate"
    for completion in candidates:
        try:
            compile(prompt + completion, "<completion>", "exec")
        except (SyntaxError, ValueError) as exc:
            error = _syntax_message(exc)
            continue
        return Extraction(code, completion, kind)  # type: ignore[arg-type]
    return Extraction(code, None, kind, error)  # type: ignore[arg-type]


def _syntax_message(exc: Exception) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def _strip_main_blocks(code: str) -> str:
    """Remove top-level ``if __name__ == "__main__":`` blocks (demos, input() loops)."""
    if not _parses(code):
        return code
    tree = ast.parse(code)
    lines = code.split("\n")
    for node in reversed(tree.body):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            del lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(lines)


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.comparators) == 1):
        return False
    names = [test.left, test.comparators[0]]
    has_name = any(isinstance(n, ast.Name) and n.id == "__name__" for n in names)
    has_main = any(isinstance(n, ast.Constant) and n.value == "__main__" for n in names)
    return has_name and has_main


def _drop_leading_prose(text: str) -> str:
    """Drop unindented leading lines that are not Python (e.g. "Here is the body:")."""
    lines = text.split("\n")
    while lines and (
        not lines[0].strip() or (not lines[0].startswith((" ", "\t")) and not _is_code(lines[0]))
    ):
        lines.pop(0)
    return "\n".join(lines)


def _is_code(line: str) -> bool:
    """A line that parses alone, or as the header of a block (``for x in y:``)."""
    return _parses(line) or _parses(line + "\n    pass")


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _drop_trailing_prose(code: str) -> str:
    """Cut prose after raw code: trailing unindented lines that are not Python."""
    lines = code.rstrip("\n").split("\n")
    while lines and (
        not lines[-1].strip() or (not lines[-1].startswith((" ", "\t")) and not _is_code(lines[-1]))
    ):
        lines.pop()
    return "\n".join(lines) if lines else code


__all__ = ["Extraction", "extract_completion", "find_code"]
