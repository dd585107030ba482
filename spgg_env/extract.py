"""Answer extraction: the one number extractor and the one option extractor of the tasks.

Every function here is total: any ``str`` goes in, nothing raises, and out comes an
:class:`Extraction` (the answer, or ``None`` and why). Numbers are exact
:class:`~fractions.Fraction` values (integers up to 1,000 digits, decimals, fractions), never
floats.

Two answer formats, chosen per task with ``answer_format=`` (see :data:`ANSWER_FORMATS`):

**strict** (the default, and the reward): a text must *commit* to exactly one final answer.

* A commitment is an answer statement: ``#### N``; ``\\boxed{N}``; "The answer is N",
  "The final answer is N", "The answer to the question is N", "Final answer: N", "Answer: N",
  "Answer = N", "The answer is x = N" (any case, markdown
  bold allowed: ``**Answer:** 12``; the value may sit on the next line). For options the same
  phrases name a letter ("Answer: C", "**Answer: (C)**", "The answer is (C).", ``\\boxed{C}``),
  and "I choose / pick / select / go with C" counts too. A letter may be followed by its own
  option's text ("Answer: C. Berlin"); an option's exact text may stand for its letter
  ("The answer is Berlin").
* Exactly one committed answer: every statement in the text must name the same value
  (repeating it is fine). Two statements that differ anywhere ("#### 12" and "The answer is
  13"; "Answer: B ... Actually the answer is C") score 0: ``contradictory final answers``.
* One value per statement: "12 or 13", "C A B D", "A or C", ``#### 12 13 14`` score 0
  (``several final answers``); "12-14", "12 to 14", "between 12 and 14", "at least 12" score 0
  (``range is not an answer``); a letter followed by another option's text ("Answer: C. Paris"
  when Paris is option A) scores 0.
* Inside a statement a computation ends on its result ("The answer is 9 * 2 = 18" commits to
  18), a justification may follow ("18, because 9 * 2 = 18"), a negated alternative is not an
  answer ("13, not 12"; "C, not A"), and a negated statement commits to nothing ("the answer
  is not 12").
* Not statements: text in double quotes (``"Answer: C"`` quoted as an example) and reported
  answers ("Agent 1 said the answer is 12", "Agent 1's answer is 12").
* A reply with no statement commits only if it is one answer and nothing else: one number on
  one line ("18", "$18.00", "18 apples"), or one option ("C", "(C)", "C. Berlin", "Berlin").
* No fallback: any other text with no statement ("12, 13, 14, 18", a restated question, an
  option's text somewhere in the prose) scores 0 with ``no committed answer (expected '#### N')``.
  Working before the answer may hold any numbers.

Before reading, the text is normalised so that what a reader sees is what is parsed: Unicode
NFKC (fullwidth digits and letters), every Unicode decimal digit as its ASCII digit, the
Unicode minus and dashes as ``-``, zero-width characters and soft hyphens removed, Cyrillic,
Greek and Cherokee look-alikes of A-D read as A-D, LaTeX (``\\frac{a}{b}``, ``\\text{}``,
``\\$``, ``\\%``, ``\\times``, ``1{,}000``, ``\\(`` ``\\)``) and GSM8K's calculator notes
(``<<9*2=18>>``) as plain text; ``3\u00b2`` stays a power and ``1\u00bd`` a mixed number.

A number is ``12``, ``-5``, ``+7``, ``1,234`` (thousands commas), ``3.25``, ``.5``, ``1e3``,
``3/4``, ``1 1/2``, with an optional ``$`` before and any unit or ``%`` after. Words
("twelve") are not numbers. A number with more than 1,000 digits or an exponent beyond 100 is
not read (a statement made of one scores 0).

**lenient** (the papers' baselines; never the default reward): the extraction published
baselines use, which pays guesses. Numbers: the last ``#### n``, else the last
``\\boxed{n}``, else the last answer phrase followed by a number ("the answer is 9 * 2 = 18"
reads the number after the last ``=``, else the first number), else *the last number anywhere*.
Options: the last answer statement that names letters (two letters read as none), else the
whole text as one letter or one option's text, else an option label at the start, else *the text
of exactly one option anywhere*, else exactly one letter marked as an option ("(C)", "option
C"). Both read the same normalised text and the same numbers as strict.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

LETTERS = "ABCD"
#: The answer formats a task accepts (``answer_format=``); the first is the default.
ANSWER_FORMATS = ("strict", "lenient")
#: The longest number read (digits) and the largest exponent of ``1e3``-style numbers.
MAX_DIGITS, MAX_EXPONENT = 1000, 100
#: How much text after an answer phrase is read as its value.
_PAYLOAD_CHARS = 2 * MAX_DIGITS + 100


@dataclass(frozen=True)
class Extraction:
    """What a text commits to.

    Attributes:
        answer: The answer (a :class:`Fraction` for numbers, ``"A"``..``"D"`` for options), or
            ``None``.
        error: Why there is no answer (``None`` when there is one).
    """

    answer: Fraction | str | None
    error: str | None = None


def check_answer_format(answer_format: str) -> str:
    """Return ``answer_format`` if it is one of :data:`ANSWER_FORMATS`.

    Raises:
        ValueError: For any other value.
    """
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
    return answer_format


# -------------------------------------------------------------------------------- normalising
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\ufeff"))
_LOOKALIKES = str.maketrans(
    "\u0410\u0412\u0421\u0430\u0441\u0391\u0392\u03f9\u03f2\u13aa\u13f4\u13df\u13a0"
    "\u2212\u2010\u2011\u2012\u2013\ufe63\u00d7\u00f7\u2044\u2215",
    "ABCacABCcABCD------*///",
)
# NFKC would turn 3\u00b2 into 32 and 1\u00bd into 11/2: keep the power and the mixed number.
_SUPERSCRIPTS = re.compile("[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+")
_VULGAR_AFTER_DIGIT = re.compile("(?<=\\d)(?=[\u00bc-\u00be\u2150-\u215e])")
_MARKUP = [
    (re.compile(r"<<[^<>\n]{0,200}>>"), ""),  # GSM8K calculator annotations: <<9*2=18>>
    (re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"(\1)/(\2)"),
    (re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\(?:times|cdot|ast)\b"), " * "),
    (re.compile(r"\\div\b"), " / "),
    (re.compile(r"\\(?:left|right)\b"), ""),
    (re.compile(r"\\([$%])"), r"\1"),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"(?<=\d)\\[,;!: ](?=\d{3})"), ""),
    (re.compile(r"\\[()\[\]]"), " "),
]
# A fraction whose parts are plain numbers loses its parentheses again: (3)/(4) -> 3/4.
_PAREN_FRACTION = re.compile(r"\((\s*-?[\d.]+\s*)\)/\((\s*[\d.]+\s*)\)")


def normalise(text: str) -> str:
    """The text as a reader sees it: see the module docstring (never raises on a ``str``)."""
    text = _VULGAR_AFTER_DIGIT.sub(" ", text.translate(_INVISIBLE))
    text = _SUPERSCRIPTS.sub(lambda m: "^" + unicodedata.normalize("NFKC", m.group()), text)
    text = unicodedata.normalize("NFKC", text).translate(_LOOKALIKES)
    text = "".join(
        str(unicodedata.decimal(ch)) if not ch.isascii() and ch.isdecimal() else ch for ch in text
    )
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return _PAREN_FRACTION.sub(lambda m: f"{m.group(1).strip()}/{m.group(2).strip()}", text)


# ---------------------------------------------------------------------------------- numbers
_NUMBER_RE = re.compile(
    r"(?<![\w.])"  # not glued to a word, a digit or a decimal point before it
    r"(?:(?P<sign>[-+])\$?\s?|\$\s?)?"  # sign, currency
    r"(?:(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?|(?P<point>\.\d+))"  # 1,234 3.2 .5
    r"(?P<exp>[eE][-+]?\d+)?"  # 1e3
    r"(?P<frac>/\d+|\s\d+/\d+)?"  # 3/4 or the 1/2 of 1 1/2
    r"(?!\d)"
)


@dataclass(frozen=True)
class _Number:
    value: Fraction | None  # None: a number too long or malformed to read
    start: int
    end: int
    text: str


def _numbers(text: str, pos: int = 0) -> Iterator[_Number]:
    """The numbers of a normalised text from ``pos`` on, lazily, in order.

    A sign right after a number (``5 - 3``, ``5 + 3``) is an operator, not part of the number.
    """
    for match in _NUMBER_RE.finditer(text, pos):
        start, sign = match.start(), match.group("sign")
        before = text[max(0, start - 40) : start].rstrip()
        if sign and before[-1:] in set("0123456789)%"):
            start, sign = start + 1, None
        value = _value(match, negative=sign == "-")
        yield _Number(value, start, match.end(), text[start : match.end()])


def _value(match: re.Match[str], negative: bool) -> Fraction | None:
    """The exact value of one ``_NUMBER_RE`` match, or ``None`` when it is out of range."""
    whole = (match.group("int") or "0").replace(",", "") + (match.group("dec") or "")
    whole += match.group("point") or ""
    exponent = int(match.group("exp")[1:]) if match.group("exp") else 0
    if len(whole) > MAX_DIGITS or abs(exponent) > MAX_EXPONENT:
        return None
    frac = match.group("frac") or ""
    try:
        value = Fraction(whole) * Fraction(10) ** exponent
        if frac[:1].isspace():  # mixed number: 1 1/2
            value += Fraction(frac.strip())
        elif frac:  # 3/4: the number read so far is the numerator
            value /= int(frac[1:])
    except (ValueError, ZeroDivisionError):
        return None
    return -value if negative else value


def parse_number(text: str) -> Fraction | None:
    """The exact value of the first number of a short string (``"$1,234.50"``, ``"-3/4 cups"``).

    Returns:
        A :class:`Fraction`, or ``None`` when the string holds no readable number.
    """
    if not isinstance(text, str):
        return None
    return _first_value(normalise(text))


def to_fraction(value: Any) -> Fraction | None:
    """An int, float (read as its shortest decimal: ``0.1`` is 1/10), str or Fraction, exactly."""
    if isinstance(value, Fraction | int) and not isinstance(value, bool):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value)) if value == value and abs(value) != float("inf") else None
    return parse_number(value) if isinstance(value, str) else None


def numbers_match(predicted: Any, gold: Any) -> bool:
    """True when ``predicted`` and ``gold`` are the same number, exactly (no float tolerance)."""
    a, b = to_fraction(predicted), to_fraction(gold)
    return a is not None and b is not None and a == b


def plain_number(value: Fraction) -> int | float:
    """A JSON-friendly copy of a value: an ``int`` when it is whole, else the nearest float."""
    return value.numerator if value.denominator == 1 else float(value)


def _first_value(text: str) -> Fraction | None:
    return next((n.value for n in _numbers(text) if n.value is not None), None)


def _show(value: Fraction | str) -> str:
    if isinstance(value, str):
        return value
    return str(value.numerator) if value.denominator == 1 else str(float(value))


# ------------------------------------------------------------------------------- statements
# An answer phrase: "The answer is", "The final answer is", "Final answer:", "Answer =".
_PHRASE = (
    r"(?<![^\s*_#>(\"'])(?:(?:final|correct|right)\s+)?answer\b\**"
    r"(?:\s+to\s+(?:the|this)\s+(?:[\w-]+\s+){0,3}?(?:question|problem|task|puzzle))?"
    r"(?:\s+is\b|\s*[:=])"
)
_NUMBER_STATEMENT_RE = re.compile(_PHRASE + r"|####", re.IGNORECASE)
_CHOICE_STATEMENT_RE = re.compile(
    _PHRASE + r"|\bI\s+(?:would\s+|'d\s+)?(?:choose|pick|select|go\s+with)\b", re.IGNORECASE
)
# Someone else's answer: "Agent 1 said (that) the answer is", "Agent 1's answer is".
_REPORTED_RE = re.compile(
    r"(?:\b(?:said|says|wrote|writes|claimed|claims|thinks|thought|believes|believed|suggested"
    r"|suggests|argued|argues|stated|states|concluded|concludes)\b(?:\s+that)?[\s:,]*[\"\u201c]?"
    r"|(?:'s|\u2019s|\btheir|\bhis|\bher|\bits|\byour|\bwhose)\s+)"
    r"\s*(?:the\s+)?(?:(?:final|correct|right)\s+)?$",
    re.IGNORECASE,
)
_QUOTED_RE = re.compile(r"\"[^\"\n]{0,300}\"|\u201c[^\u201d\n]{0,300}\u201d")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _boxed(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces kept),
    in order of start, in one pass over the braces."""
    box_at = {m.end() - 1: m.start() for m in _BOXED_RE.finditer(text)}  # "{" -> "\\boxed"
    if not box_at:
        return []
    found, opened = [], []
    for brace in re.finditer("[{}]", text):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened and (start := opened.pop()) in box_at:
            found.append((box_at[start], brace.end(), text[start + 1 : brace.start()]))
    return sorted(found)


def _unboxed(text: str, boxes: list[tuple[int, int, str]]) -> str:
    """``text`` with each outermost box replaced by its content."""
    pieces, done = [], 0
    for start, end, content in boxes:
        if start >= done:  # a box nested in the previous one goes with it
            pieces += [text[done:start], f" {content} "]
            done = end
    return "".join([*pieces, text[done:]])


def _payload(text: str, start: int) -> str:
    """The value part after a statement: the rest of its line, or the next line if that is empty."""
    rest = text[start : start + _PAYLOAD_CHARS]  # longer than any number that is read
    line, _, after = rest.partition("\n")
    if line.strip(" \t*_:=") or not after.strip():
        return line
    return after.lstrip("\n").split("\n", 1)[0]


def _statement_payloads(text: str, statement_re: re.Pattern[str]) -> list[str]:
    """What every answer statement of a normalised text says, in text order.

    Boxed contents first become statements of their own and are then read as plain text;
    quoted text and reported answers are not statements.
    """
    boxes = _boxed(text)
    payloads = [(start, content) for start, _, content in boxes]
    text = _unboxed(text, boxes)
    masked = _QUOTED_RE.sub(lambda m: " " * len(m.group(0)), text)
    for match in statement_re.finditer(masked):
        before = masked[max(0, match.start() - 80) : match.start()].rsplit("\n", 1)[-1]
        if not _REPORTED_RE.search(before):
            payloads.append((match.start(), _payload(text, match.end())))
    return [content for _, content in sorted(payloads, key=lambda item: item[0])]


def _commitment(readings: Iterable[tuple[Any, str | None]], expected: str) -> Extraction:
    """The one answer of a text from what each statement read (``(value, error)`` pairs)."""
    values: list[Any] = []
    for value, error in readings:
        if error is not None:
            return Extraction(None, error)
        if value is not None and value not in values:
            values.append(value)
    if not values:
        return Extraction(None, f"no committed answer (expected '{expected}')")
    if len(values) > 1:
        return Extraction(None, "contradictory final answers: " + ", ".join(map(_show, values)))
    return Extraction(values[0])


# ---------------------------------------------------------------------------- strict numbers
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s|$)|[;\n]")
_LEAD_RE = re.compile(
    r"(?:[\s*_:=$({\[`\"'\u201c]|\b(?:approximately|about|around|roughly|exactly|just|only|simply"
    r"|equal\s+to|equals)\b|\b[a-z]\s*=(?!=))*",  # also "x = 5", "N = 5"
    re.IGNORECASE,
)
_NEGATION_RE = re.compile(r"\s*(?:not|n't|never|no\s+longer)\b", re.IGNORECASE)
_RANGE_LEAD_RE = re.compile(
    r"(?:between|from|at\s+least|at\s+most|more\s+than|less\s+than|fewer\s+than|greater\s+than"
    r"|over|under|up\s+to|no\s+more\s+than|[<>\u2264\u2265])\s*\$?\s*[-+.\d]",
    re.IGNORECASE,
)
_HEDGE_RE = re.compile(
    r"\b(?:or|and|either|maybe|perhaps|possibly|probably|alternatively|also|could|might)\b",
    re.IGNORECASE,
)
_REASON_RE = re.compile(
    r"\b(?:because|since|as|which|so|given|from|by|after|before|when|where|if|with|for|per"
    r"|each|that|this|then|of|in|at|on|i\.e|e\.g|hence|thus|therefore)\b",
    re.IGNORECASE,
)
_ASIDE_RE = re.compile(r"[(:\u2014]|--")
_RANGE_RE = re.compile(r"\b(?:to|through|thru)\b|~", re.IGNORECASE)
_OPERATOR_RE = re.compile(
    r"\s*(?:[^\W\d_]+\s*)?(?:[-+*/x^]|\b(?:plus|minus|times)\b)\s*\(?\s*", re.IGNORECASE
)
_NOT_RE = re.compile(r"\b(?:not|n't)\b", re.IGNORECASE)


def _read_number(payload: str) -> tuple[Fraction | None, str | None]:
    """What one statement commits to: ``(value, None)``, ``(None, why not)``, or ``(None, None)``
    when it names no number ("the answer is unclear", "the answer is not 12").

    After the first number, the gap before each further number decides: "not" rejects that
    number; a hedge word ("or", "maybe") makes two answers; a reason ("because", "since", "(")
    ends the answer; ``=`` moves the answer to the result; an operator continues an expression;
    anything else ("12 13", "12, 13", "12 to 14") makes two answers or a range.
    """
    clause = _SENTENCE_END_RE.split(payload, 1)[0]
    quoted = repr(clause.strip()[:60] + ("..." if len(clause.strip()) > 60 else ""))
    lead = _LEAD_RE.match(clause).end()
    if _NEGATION_RE.match(clause, lead):
        return None, None
    if _RANGE_LEAD_RE.match(clause, lead):
        return None, f"range is not an answer: {quoted}"
    numbers = _numbers(clause, max(0, lead - 2))
    first = next(numbers, None)
    if first is None or not first.start <= lead < first.end:
        return None, None
    segment, operators, previous = [first], [], first
    for number in numbers:
        gap, previous = clause[previous.end : number.start], number
        if _NOT_RE.search(gap):  # "13, not 12": a rejected alternative
            break
        hedge, reason = _HEDGE_RE.search(gap), _REASON_RE.search(gap)
        if hedge and not (reason and reason.start() < hedge.start()):
            kind = "range is not an answer" if _RANGE_RE.search(gap) else "several final answers"
            return None, f"{kind}: {quoted}"
        if reason or _ASIDE_RE.search(gap):
            break
        if "=" in gap:  # "9 * 2 = 18" commits to the result; "12 = 13" to two numbers
            if len(segment) == 1 and segment[0].value != number.value:
                return None, f"several final answers: {quoted}"
            segment, operators = [number], []
        elif _OPERATOR_RE.fullmatch(gap):
            segment.append(number)
            operators.append(gap.strip(" ("))
        elif _RANGE_RE.search(gap):
            return None, f"range is not an answer: {quoted}"
        else:
            return None, f"several final answers: {quoted}"
    if len(segment) > 1:  # "12 - 14", "9 * 2": no result given
        kind = "range is not an answer" if operators == ["-"] else "unevaluated expression"
        return None, f"{kind}: {quoted}"
    if segment[0].value is None:
        return None, f"unreadable number: {segment[0].text[:40]!r}"
    return segment[0].value, None


def _whole_number(text: str) -> tuple[Fraction | None, str | None]:
    """A reply that is one number and nothing else ("18", "$18.00", "18 apples") commits to it."""
    line = text.strip()
    if "\n" in line or sum(1 for _ in _numbers(line)) != 1:
        return None, None
    return _read_number(line)


def _strict_number(text: str, expected: str) -> Extraction:
    readings = [_read_number(p) for p in _statement_payloads(text, _NUMBER_STATEMENT_RE)]
    return _commitment(readings or [_whole_number(text)], expected)


# --------------------------------------------------------------------------- lenient numbers
_LENIENT_PHRASE_RE = re.compile(
    r"\banswer\b[\s*]*(?:is|was|would be|will be|should be|=|:)[\s*]*[:=]?", re.IGNORECASE
)


def _lenient_number(text: str) -> Fraction | None:
    """The lenient reading of the module docstring (the last number when nothing else)."""
    hashes = [line.split("\n", 1)[0] for line in text.split("####")[1:]]
    boxes = [content for _, _, content in _boxed(text)]
    for candidates in (hashes, boxes):
        for candidate in reversed(candidates):
            if (value := _first_value(candidate)) is not None:
                return value
    for match in reversed(list(_LENIENT_PHRASE_RE.finditer(text))):
        span = _SENTENCE_END_RE.split(text[match.end() :], 1)[0]
        if "=" in span and _first_value(span.rsplit("=", 1)[1]) is not None:
            span = span.rsplit("=", 1)[1]
        if (value := _first_value(span)) is not None:
            return value
    values = [n.value for n in _numbers(text) if n.value is not None]
    return values[-1] if values else None


def extract_number(
    text: str, answer_format: str = "strict", expected: str = "#### N"
) -> Extraction:
    """The final number ``text`` commits to (strict) or that a lenient reader finds.

    Args:
        text: Any model output.
        answer_format: ``"strict"`` or ``"lenient"`` (see the module docstring).
        expected: The canonical format, named in the error of a text with no answer.

    Returns:
        An :class:`Extraction` whose answer is a :class:`Fraction`, or ``None`` with the reason.

    Raises:
        ValueError: For an unknown ``answer_format`` (any text is fine).
    """
    check_answer_format(answer_format)
    if not isinstance(text, str):
        return Extraction(None, f"expected a str, got {type(text).__name__}")
    text = normalise(text)
    if answer_format == "strict":
        return _strict_number(text, expected)
    value = _lenient_number(text)
    return Extraction(value) if value is not None else Extraction(None, "no number found")


def grade_number(
    text: str, gold: Any, answer_format: str = "strict", expected: str = "#### N"
) -> tuple[float, int | float | None, str | None]:
    """``(score, extracted, error)`` of ``text`` against a gold number: 1.0 on an exact match.

    ``extracted`` is JSON-friendly (see :func:`plain_number`); the match is exact.
    """
    got = extract_number(text, answer_format, expected)
    if got.answer is None:
        return 0.0, None, got.error
    return float(numbers_match(got.answer, gold)), plain_number(got.answer), None


# ---------------------------------------------------------------------------- strict options
# A letter as an option: "C", "(C)", "[C]", "C)", "C.", "**C**", not "C++", "CEO" or "D's".
_LABEL_RE = re.compile(r"[(\[{]?([A-Da-d])([)\]}]|\*+|[.:](?=\s|$))?(?![\w+#'\u2019])")
_MORE_RE = re.compile(
    r"(?:[\s,/&()*]|(?i:\b(?:or|and|maybe|perhaps|possibly|probably|either|also|option|choice)\b))+"
)
_CLAUSE_RE = re.compile(
    r"\s+(?:is|was|are|isn't|seems|would|could|can|cannot|can't|might|does|doesn't)\b"
)
_LABEL_TAIL = " \t.:)]}*_-,"


def _strict_text(text: str) -> str:
    """Lower case, whitespace collapsed, symbols kept ("-x" differs from "+x")."""
    return " ".join(text.lower().split())


@lru_cache(maxsize=1024)
def _needles(choices: tuple[str, ...]) -> tuple[str, ...]:
    """The option texts as :func:`_option_at_start` compares them (normalised, lower case)."""
    return tuple(_strict_text(normalise(choice)).rstrip(".") for choice in choices)


def _option_at_start(text: str, choices: Sequence[str]) -> str | None:
    """The letter of the longest option text that ``text`` starts with (``None`` if none).

    A one-character option text ("4") counts only when it is the whole of ``text``.
    """
    needles = _needles(tuple(choices))
    head = text[: 4 * max(map(len, needles), default=0) + 100].lstrip(" *_:")
    head = _strict_text(head)
    best: tuple[int, str] | None = None
    for letter, needle in zip(LETTERS, needles, strict=False):
        if not needle or not re.match(rf"{re.escape(needle)}(?!\w)", head):
            continue
        if len(needle) < 2 and head.rstrip(" .!*_") != needle:
            continue
        best = max(best or (0, ""), (len(needle), letter))
    return best[1] if best else None


def _one_option(text: str, choices: Sequence[str]) -> tuple[str | None, int, bool]:
    """The option ``text`` starts with: ``(letter, length read, named by its label)``.

    A label ("C", "(C)", "C.") names a letter; an option's own text names its letter too. A
    bare capital that starts an option's text ("A decrease in prices") is read as that text;
    a lower-case letter counts only in brackets or alone ("(c)", "c.").
    """
    label = _LABEL_RE.match(text)
    if label is not None and label.group(1).islower() and not label.group(2):
        if not re.match(r"[a-d]\s*(?:[.!?,;]\s*)?$", text):  # "a" as an article
            label = None
    by_text = _option_at_start(text, choices) if choices else None
    if label is None or (by_text is not None and not label.group(2) and text[0] not in "([{"):
        if by_text is None:
            return None, 0, False
        return by_text, len(_needles(tuple(choices))[LETTERS.index(by_text)]), False
    return label.group(1).upper(), label.end(), True


def _read_choice(
    payload: str, choices: Sequence[str], whole: bool = False
) -> tuple[str | None, str | None]:
    """What one option statement commits to: ``(letter, None)``, ``(None, why not)``, or
    ``(None, None)`` when it names no option.

    After a label, another option's text is a mismatch ("C. Paris" when Paris is A) and its
    own text is skipped; then every further option joined by ",", "/", "or", "and", "maybe"
    or a space ("C A B D", "A or C") is another answer, unless it starts a clause ("and D is
    wrong") or is negated ("C, not A"). With ``whole``, ``payload`` is a whole reply, which
    commits only if it is one option and nothing else ("C", "(C)", "C. Berlin", "Berlin").
    """
    text = payload.lstrip(" \t*_:=")
    text = re.sub(r"^(?i:(?:option|choice|letter)\s+)", "", text)
    letter, end, by_label = _one_option(text, choices)  # "not C" names no option: nothing
    if letter is None:
        return None, None
    rest = text[end:]
    if choices and by_label:
        tail = rest.lstrip(_LABEL_TAIL)
        named = _option_at_start(tail, choices)
        if named is not None and named != letter:
            choice = choices[LETTERS.index(named)]
            return None, f"letter {letter} with the text of option {named} ({choice!r:.60})"
        if named == letter:  # "C. Berlin": skip its own text
            rest = tail[len(_needles(tuple(choices))[LETTERS.index(letter)]) :]
    if whole:
        return (None, None) if rest.strip(" \t\n.!*_") else (letter, None)
    letters = [letter]
    if text[:end].endswith("."):  # "B. A and C are wrong": the answer's sentence has ended
        rest = ""
    while (gap := _MORE_RE.match(rest)) is not None:
        more, length, _ = _one_option(rest[gap.end() :], choices)
        if more is None or _CLAUSE_RE.match(rest, gap.end() + length):
            break
        letters.append(more)
        rest = rest[gap.end() + length :]
    if len(set(letters)) > 1:
        return None, "several letters in one answer: " + ", ".join(dict.fromkeys(letters))
    return letter, None


def _strict_choice(text: str, choices: Sequence[str], expected: str) -> Extraction:
    readings = [_read_choice(p, choices) for p in _statement_payloads(text, _CHOICE_STATEMENT_RE)]
    return _commitment(readings or [_read_choice(text.strip(), choices, whole=True)], expected)


# --------------------------------------------------------------------------- lenient options
_OPT = r"[\(\[\*]*([A-D])(?![\w+#'])[\)\]\*]*"
_OPT_LOWER = r"[\(\[\*]*([a-d])(?:[\)\]\*]+|(?=[.:,;!?]|\s*$|\s*\n))"
_CONNECT = r"(?:\s+(?:is|would be|will be|should be|must be|=))?(?:\s+(?:option|choice|letter))?"
_LENIENT_STATEMENT_RE = re.compile(
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
_START_LABEL_RE = re.compile(r"^\s*[\(\[\*]*([A-D])(?:[\)\]\.:]|\*\*)\s", re.MULTILINE)
_MARKED_RE = re.compile(r"\((?P<p>[A-D])\)|\b(?:option|choice)\s+(?P<o>[A-D])\b", re.IGNORECASE)


def _letters_after(text: str, pos: int) -> list[str] | None:
    """Letters named right after a lenient answer statement ("C or D": both; "C, not A": C)."""
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


def _loose_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _option_anywhere(text: str, choices: Sequence[str]) -> str | None:
    """The letter of the one option whose text appears in ``text`` (symbols first, then loose);
    an option inside another found option's text does not count alone."""
    for normalise_text in (_strict_text, _loose_text):
        haystack = normalise_text(text)
        found = {}
        for letter, choice in zip(LETTERS, choices, strict=False):
            needle = normalise_text(str(choice))
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


def _lenient_choice(text: str, choices: Sequence[str]) -> str | None:
    """The lenient reading of the module docstring (any single option text anywhere pays)."""
    if not text.strip():
        return None
    statements = [
        (m.end(), _letters_after(text, m.end())) for m in _LENIENT_STATEMENT_RE.finditer(text)
    ]
    statements += [(m.end(), [m.group(1).upper()]) for m in _IS_CORRECT_RE.finditer(text)]
    statements.sort(key=lambda item: item[0])
    named = [(pos, letters) for pos, letters in statements if letters]
    if named:
        pos, letters = named[-1]
        if choices and (letter := _option_at_start(text[pos:], choices)) is not None:
            return letter
        return letters[0] if len(set(letters)) == 1 else None
    if (bare := _BARE_RE.match(text)) is not None:
        return bare.group(1)
    whole = _strict_text(text).rstrip(".")
    exact = [i for i, c in enumerate(choices) if _strict_text(str(c)) == whole]
    if len(exact) == 1:
        return LETTERS[exact[0]]
    labels = [m.group(1) for m in _START_LABEL_RE.finditer(text)]
    if labels and _START_LABEL_RE.match(text) and len(set(labels)) == 1:
        return labels[0]
    if choices:
        for pos, _ in reversed(statements):
            if (letter := _option_anywhere(text[pos:].split("\n", 1)[0], choices)) is not None:
                return letter
        if (letter := _option_anywhere(text, choices)) is not None:
            return letter
    marked = {(m.group("p") or m.group("o")).upper() for m in _MARKED_RE.finditer(text)}
    return marked.pop() if len(marked) == 1 else None


def extract_choice(
    text: str,
    choices: Sequence[str] | None = None,
    answer_format: str = "strict",
    expected: str = "Answer: X",
) -> Extraction:
    """The option letter (A-D) ``text`` commits to (strict) or that a lenient reader finds.

    Args:
        text: Any model output.
        choices: The four option texts in A-D order: an answer may be given as an option's
            text, and a letter followed by another option's text is caught.
        answer_format: ``"strict"`` or ``"lenient"`` (see the module docstring).
        expected: The canonical format, named in the error of a text with no answer.

    Returns:
        An :class:`Extraction` whose answer is ``"A"``..``"D"``, or ``None`` with the reason.

    Raises:
        ValueError: For an unknown ``answer_format`` (any text is fine).
    """
    check_answer_format(answer_format)
    if not isinstance(text, str):
        return Extraction(None, f"expected a str, got {type(text).__name__}")
    text, options = normalise(text), [str(c) for c in choices or ()]
    if answer_format == "strict":
        return _strict_choice(text, options, expected)
    letter = _lenient_choice(text, options)
    if letter is None:
        return Extraction(None, "no single option (A-D) found in the text")
    return Extraction(letter)


def grade_choice(
    text: str,
    key: str,
    choices: Sequence[str] | None = None,
    answer_format: str = "strict",
    expected: str = "Answer: X",
) -> tuple[float, str | None, str | None]:
    """``(score, extracted letter, error)`` of ``text`` against the key: 1.0 when they match."""
    got = extract_choice(text, choices, answer_format, expected)
    if got.answer is None:
        return 0.0, None, got.error
    return float(got.answer == key), str(got.answer), None
