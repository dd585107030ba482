"""Answer extractors shared by the tasks: the final number of a text, the chosen option letter.

Both are total functions: any string goes in, and out comes the answer or ``None`` when the text
gives none (or, for options, names more than one). Neither ever raises on a ``str``.

Numbers (GSM8K). :func:`extract_number` looks for the final answer in this order and takes the
first kind that is present (the last occurrence of it):

1. ``#### n`` (the GSM8K solution format),
2. ``\\boxed{n}`` (LaTeX, nested braces allowed),
3. an answer phrase: "the answer is n", "final answer: n", "Answer: n"; when the phrase is
   followed by a computation ("the answer is 9 * 2 = 18") the number after the last ``=`` wins,
4. the last number anywhere in the text.

:func:`parse_number` reads one number: thousands commas (``1,234``), currency (``$``, ``€``,
``£``, ``\\$``), a trailing unit or ``%``, negatives (``-5``, the Unicode minus ``−5``),
decimals (``.5``, ``3.25``), simple fractions (``3/4``, ``1 1/2``, ``\\frac{3}{4}``).
:func:`numbers_match` compares two numbers with a relative and absolute tolerance of 1e-6.

Options (MMLU). :func:`extract_choice` reads "C", "(C)", "C.", "**C**", "Answer: C",
"the answer is C", "the correct option is (C)", "I choose C", or the text of exactly one option.
A text that states two options ("the answer is A or C") yields ``None``: naming two options is a
wrong answer. "C, not A" names C.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

LETTERS = "ABCD"

# ------------------------------------------------------------------------------------ numbers
_MINUS = "-\u2212\u2013"  # hyphen-minus, Unicode minus, en dash
_NUMBER = (
    rf"(?<![\w.])[{_MINUS}]?"  # optional sign, not glued to a word or a digit before it
    r"(?:\\?[$€£]\s?)?"  # optional currency, LaTeX-escaped or not
    r"(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?"  # integer part with thousands commas, decimals
    r"(?:\s\d+/\d+|/\d+)?"  # mixed or simple fraction
)
_NUMBER_RE = re.compile(_NUMBER)
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_HASHES_RE = re.compile(r"####\s*([^\n]*)")
_ANSWER_PHRASE_RE = re.compile(
    r"\banswer\b[\s*]*(?:is|was|would be|will be|should be|=|:)[\s*]*[:=]?", re.IGNORECASE
)
_SENTENCE_END_RE = re.compile(r"\.(?!\d)")


def parse_number(text: str) -> float | None:
    """Parse the first number of a short string such as ``"$1,234.50"`` or ``"-3/4 cups"``.

    Returns:
        The value as a float, or ``None`` when the string holds no number.
    """
    text = _FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)
    for match in _NUMBER_RE.finditer(text):
        value = _to_float(match.group(0))
        if value is not None:
            return value
    return None


def _to_float(token: str) -> float | None:
    """Convert one regex match of ``_NUMBER`` into a float (``None`` if it has no digits)."""
    if not any(ch.isdigit() for ch in token):
        return None
    negative = token[:1] in _MINUS
    body = re.sub("[" + _MINUS + r"\\$€£,]", "", token).split()
    try:
        value = sum((Fraction(part) for part in body), Fraction(0))
    except (ValueError, ZeroDivisionError):
        return None
    return float(-value if negative else value)


def _all_numbers(text: str) -> list[float]:
    text = _FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)
    values = (_to_float(m.group(0)) for m in _NUMBER_RE.finditer(text))
    return [v for v in values if v is not None]


def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` (and ``\\fbox{...}``), with nested braces."""
    contents = []
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, start = 1, match.end()
        for pos in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            if depth == 0:
                contents.append(text[start:pos])
                break
    return contents


def _phrase_span(text: str) -> str | None:
    """The rest of the sentence after the last answer phrase that is followed by a number."""
    spans = []
    for match in _ANSWER_PHRASE_RE.finditer(text):
        line = _SENTENCE_END_RE.split(text[match.end() :].split("\n", 1)[0], 1)[0]
        if _all_numbers(line):
            spans.append(line)
    return spans[-1] if spans else None


def extract_number(text: str) -> float | None:
    """Extract the final numeric answer from a model output.

    Args:
        text: Any model output.

    Returns:
        The final answer as a float, or ``None`` when the text holds no number.
    """
    if not isinstance(text, str):
        return None
    for span in (_HASHES_RE.findall(text), _boxed_contents(text)):
        for candidate in reversed(span):
            value = parse_number(candidate)
            if value is not None:
                return value
    span = _phrase_span(text)
    if span is not None:
        if "=" in span and _all_numbers(span.rsplit("=", 1)[1]):
            span = span.rsplit("=", 1)[1]
        return _all_numbers(span)[0]
    numbers = _all_numbers(text)
    return numbers[-1] if numbers else None


def numbers_match(predicted: float | None, gold: float, tol: float = 1e-6) -> bool:
    """True when ``predicted`` equals ``gold`` up to a relative and absolute tolerance."""
    if predicted is None or not math.isfinite(predicted):
        return False
    return math.isclose(predicted, gold, rel_tol=tol, abs_tol=tol)


# ------------------------------------------------------------------------------------ options
# A letter that stands alone as an option: "C", "(C)", "[C]", "**C**", "C." but not "C++" or
# "CEO". Lower-case letters count only where they cannot be the article "a" of a sentence.
_OPT = r"[\(\[\*]*([A-D])(?![\w+#'])[\)\]\*]*"
_OPT_LOWER = r"[\(\[\*]*([a-d])(?:[\)\]\*]+|(?=[.:,;!?]|\s*$|\s*\n))"
_CONNECT = r"(?:\s+(?:is|would be|will be|should be|must be|=))?(?:\s+(?:option|choice|letter))?"
_STATEMENT_RE = re.compile(
    r"\b(?:(?:correct|final|best|right)\s+(?:answer|option|choice)|answer)\b"
    + _CONNECT
    + r"\s*[:=\-]?"
    + r"|\bI\s+(?:choose|pick|select|would choose|would pick|go with|'d go with)\b"
    + r"(?:\s+(?:option|choice))?\s*:?",
    re.IGNORECASE,
)
_IS_CORRECT_RE = re.compile(
    r"(?:\b(?:option|choice)\s+)?" + _OPT + r"\s+is\s+(?:the\s+)?(?:correct|right|best)\b",
    re.IGNORECASE,
)
_CONTINUATION_RE = re.compile(
    r"\s*(?:,\s*not\b|,|/|\bor\b|\band\b|&|\bnot\b)\s*(?:option\s+|choice\s+)?" + _OPT
)
_BARE_RE = re.compile(r"^\W*([A-D])\W*$")
_LABEL_RE = re.compile(r"^\s*[\(\[\*]*([A-D])(?:[\)\]\.:]|\*\*)\s", re.MULTILINE)
_MARKED_RE = re.compile(r"\((?P<p>[A-D])\)|\b(?:option|choice)\s+(?P<o>[A-D])\b", re.IGNORECASE)


def _letters_after(text: str, pos: int) -> list[str] | None:
    """Letters named right after an answer statement; ``None`` when no letter follows.

    "C or D" gives ``["C", "D"]``; "C, not A" gives ``["C"]``.
    """
    pos += re.match(r"[\s*_]*", text[pos:]).end()
    rest = text[pos:]
    first = re.match(_OPT, rest) or re.match(_OPT_LOWER, rest)
    if first is None:
        return None
    letters = [first.group(1).upper()]
    end = first.end()
    while (more := _CONTINUATION_RE.match(rest, end)) is not None:
        if not re.search(r"\bnot\b", more.group(0), re.IGNORECASE):
            letters.append(more.group(1).upper())
        end = more.end()
    return letters


def _statements(text: str) -> list[tuple[int, list[str] | None]]:
    """Every answer statement as ``(end position, letters named or None)``, in text order."""
    found = [(m.end(), _letters_after(text, m.end())) for m in _STATEMENT_RE.finditer(text)]
    found += [(m.end(), [m.group(1).upper()]) for m in _IS_CORRECT_RE.finditer(text)]
    return sorted(found, key=lambda item: item[0])


def _loose(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _strict(text: str) -> str:
    """Lower case, whitespace collapsed, symbols kept ("-x" differs from "+x")."""
    return " ".join(text.lower().split())


def _match_option_text(text: str, choices: Sequence[str]) -> str | None:
    """The letter of the one option whose text appears in ``text``, else ``None``.

    Symbols count first ("ΔG > 0" is not "ΔG = 0"); when that finds nothing, punctuation is
    ignored. An option whose text lies inside another found option's text ("Wrong, Wrong"
    inside "Not wrong, Wrong") does not count on its own.
    """
    for normalise in (_strict, _loose):
        haystack = normalise(text)
        found = {}
        for letter, choice in zip(LETTERS, choices, strict=False):
            needle = normalise(str(choice))
            if needle and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack):
                found[letter] = needle
        kept = [
            letter
            for letter, needle in found.items()
            if not any(needle != other and needle in other for other in found.values())
        ]
        if found:
            return kept[0] if len(kept) == 1 else None
    return None


def _option_prefix(text: str, choices: Sequence[str]) -> str | None:
    """The letter of the longest option text that ``text`` starts with (``None`` if none)."""
    head = _strict(text.lstrip(" *_:"))
    starts = [
        (len(needle), letter)
        for letter, choice in zip(LETTERS, choices, strict=False)
        if (needle := _strict(str(choice)).rstrip("."))
        and len(needle) > 1
        and re.match(rf"{re.escape(needle)}(?!\w)", head)
    ]
    return max(starts)[1] if starts else None


def extract_choice(text: str, choices: Sequence[str] | None = None) -> str | None:
    """Extract the option letter (A-D) a model output chooses.

    The first rule that applies decides:

    1. the last answer statement that names letters ("Answer: C", "the answer is (C)",
       "I choose C", "option C is correct"); two letters there ("A or C") give ``None``;
    2. the whole text is one letter ("C", "(C)", "**C.**") or exactly one option's text;
    3. the text starts with an option label ("C. Paris") and labels no other option;
    4. the text of exactly one option (after the last statement, else anywhere);
    5. exactly one letter marked as an option anywhere ("(C)", "option C").

    Args:
        text: Any model output.
        choices: The option texts, in A-D order, to also recognise an answer given as the
            option's text.

    Returns:
        ``"A"``..``"D"``, or ``None`` when the text names no option or more than one.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    statements = _statements(text)
    named = [(pos, letters) for pos, letters in statements if letters]
    if named:
        pos, letters = named[-1]
        if choices and (letter := _option_prefix(text[pos:], choices)) is not None:
            return letter  # "the answer is A decrease in..." names the option's text
        return letters[0] if len(set(letters)) == 1 else None
    if (bare := _BARE_RE.match(text)) is not None:
        return bare.group(1)
    exact = [i for i, c in enumerate(choices or ()) if _strict(str(c)) == _strict(text).rstrip(".")]
    if len(exact) == 1:
        return LETTERS[exact[0]]
    labels = [m.group(1) for m in _LABEL_RE.finditer(text)]
    if labels and _LABEL_RE.match(text) and len(set(labels)) == 1:
        return labels[0]
    if choices:
        for pos, _ in reversed(statements):
            if (letter := _match_option_text(text[pos:].split("\n", 1)[0], choices)) is not None:
                return letter
        if (letter := _match_option_text(text, choices)) is not None:
            return letter
    marked = {(m.group("p") or m.group("o")).upper() for m in _MARKED_RE.finditer(text)}
    return marked.pop() if len(marked) == 1 else None
