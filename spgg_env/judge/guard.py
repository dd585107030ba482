"""Checks a summary must pass before the judge's model may score it (the judge's hardening).

A learner maximises whatever the judge pays, and a 135M judge is easy to sway, so the texts
that break the task's contract are caught by plain rules, outside the model, and score 0:

==================  =========================================================================
flag                rule (words = ``\\w+`` runs, lower-cased)
==================  =========================================================================
``empty``           no word at all
``injection``       text aimed at the grader: asks for a score or rating, addresses the
                    grader/judge/evaluator/AI, tells it to ignore or follow instructions,
                    states its own score ("5/5", "score: 5"), or carries chat/prompt markup
                    (``<|im_start|>``, ``</summary>``, ``[INST]``, ``system:``)
``too_short``       fewer than :data:`MIN_WORDS` words
``too_long``        more than :data:`MAX_WORDS` words
``copy``            the summary's longest span copied word for word from the article covers
                    more than :data:`MAX_COPIED_ARTICLE_FRACTION` of the article's words
                    (a copy of the article, or most of it)
``not_prose``       fewer than :data:`MIN_FUNCTION_WORD_RATE` of its words are function words
                    (the, of, to, is, ...): a list of keywords, not sentences
``repetition``      more than :data:`MAX_REPEATED_NGRAM_RATE` of its word 4-grams are repeats
==================  =========================================================================

The thresholds sit outside everything the 1,600 expert-rated machine summaries and the 1,100
human summaries of SummEval do (``python examples/judge_robustness.py``): none of those 2,700
texts is flagged (docs/judge.md gives the data's extremes). Lead-3 (the article's first three
sentences) passes on purpose: it is a legitimate extractive summary, one of SummEval's 16
rated systems (M0), and the judge scores it like any other summary.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

#: Fewer words than this is no 2-4 sentence summary (SummEval's shortest real one has 9).
MIN_WORDS = 5
#: More words than this is far beyond 2-4 sentences (SummEval's longest real one has 151).
MAX_WORDS = 200
#: A copy of more than this share of the article's words is the article, not a summary.
MAX_COPIED_ARTICLE_FRACTION = 0.7
#: Prose has function words; a keyword list has almost none (SummEval's lowest is ~0.15).
MIN_FUNCTION_WORD_RATE = 0.04
#: The function-word rule applies from this many words on (a short headline may have none).
MIN_PROSE_CHECK_WORDS = 12
#: Share of repeated word 4-grams above which a text is a loop (SummEval's highest is ~0.5).
MAX_REPEATED_NGRAM_RATE = 0.7

FUNCTION_WORDS = frozenset(
    """a an the of to in on at for from by with about as into over after before under
    and or but nor so yet if than that which who whom whose what when where while because
    is are was were be been being has have had do does did will would can could shall should
    may might must it its he him his she her they them their we us our you your i me my
    this these those there here not no also has""".split()
)

_INJECTION_PATTERNS = (
    # asks for a score or rating
    r"\b(?:rate|score|grade|mark|judge|evaluate|assess)\s+(?:this|the|my|our)\s+"
    r"(?:summary|text|answer|response|output)\b",
    r"\b(?:give|assign|award)\s+(?:this|the|my|our|it|me|us)\s+(?:summary\s+|text\s+|answer\s+|"
    r"response\s+)?(?:a\s+|an\s+)?(?:5|five|perfect|full|top|maximum|highest|excellent)\b",
    r"\b(?:reply|respond|answer|output|return)\s+(?:only\s+)?with\s+(?:a\s+|the\s+)?"
    r"(?:5|five|highest|maximum|top|perfect)\b",
    r"\b(?:rate|score|grade)\b[^.!?\n]{0,30}\b(?:5|five|highest|maximum|max|top|perfect|"
    r"full)\b[^.!?\n]{0,30}\b(?:on|in|for|across)\s+(?:all|every|each)\b",
    r"\b(?:highest|maximum|perfect|full|top)\s+(?:score|rating|marks|grade)\b",
    # states its own score
    r"\b[1-5]\s*(?:/|out\s+of)\s*5\b",
    r"\b(?:score|rating|grade)\s*[:=]\s*[1-5]\b",
    # addresses the grader or the model
    r"\b(?:dear|attention|note\s+to(?:\s+the)?)\s+(?:grader|judge|evaluator|reviewer|"
    r"assistant|ai|model)\b",
    r"\b(?:grader|evaluator|language\s+model|ai\s+assistant)\s*[:,]",
    r"\bas\s+an?\s+(?:ai|language\s+model|grader|judge|evaluator)\b",
    # tells it to ignore or follow instructions
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:instructions?|prompt|"
    r"rules|criteria|above|previous|everything)\b",
    r"\b(?:new|system|updated)\s+(?:instructions?|prompt|rules)\b",
    r"\byou\s+(?:must|should|will|are\s+required\s+to)\s+(?:rate|score|give|grade|answer|"
    r"reply|respond|output|say)\b",
    # prompt or chat markup
    r"<\|[a-z_]+\|>",
    r"<\s*/?\s*(?:summary|article|system|user|assistant)\s*>",
    r"\[/?inst\]",
    r"(?:^|\n)\s*(?:system|assistant|user)\s*:",
)
_INJECTION_RE = re.compile("|".join(f"(?:{p})" for p in _INJECTION_PATTERNS), re.IGNORECASE)
_WORD_RE = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The lower-cased ``\\w+`` runs of ``text``."""
    return _WORD_RE.findall(text.lower())


def longest_common_span(a: list[str], b: list[str]) -> int:
    """Length of the longest run of words that appears, in order and contiguous, in both
    (``difflib.SequenceMatcher.find_longest_match``, without its junk heuristic)."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.find_longest_match(0, len(a), 0, len(b)).size


def function_word_rate(tokens: list[str]) -> float:
    """Share of function words among the words that are not numbers (scores and dates are
    neutral: "Doncaster Rovers 0-0 Fleetwood Town" is a headline, not a keyword list)."""
    lexical = [t for t in tokens if not t.isdigit()]
    return sum(t in FUNCTION_WORDS for t in lexical) / len(lexical) if lexical else 0.0


def repeated_ngram_rate(tokens: list[str], n: int = 4) -> float:
    """Share of the word n-grams that repeat an earlier one: ``1 - distinct / total``."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(Counter(grams)) / len(grams) if grams else 0.0


@dataclass(frozen=True)
class GuardReport:
    """What the guard measured and which rules the text broke.

    Attributes:
        flags: Names of the broken rules (empty: the text may be scored).
        measures: The measured values the rules compare (JSON-serialisable).
        matched: The first injection match, if any.
    """

    flags: tuple[str, ...]
    measures: dict[str, float] = field(default_factory=dict)
    matched: str | None = None

    @property
    def ok(self) -> bool:
        """True when no rule was broken."""
        return not self.flags

    @property
    def error(self) -> str | None:
        """One line naming the broken rules, for ``Score.error`` (``None`` when ok)."""
        if self.ok:
            return None
        found = f" ({self.matched!r})" if self.matched else ""
        return "judge guard: " + ", ".join(self.flags) + found

    def to_json(self) -> dict[str, object]:
        """Plain dict for ``Score.details``."""
        return {"flags": list(self.flags), "measures": dict(self.measures), "matched": self.matched}


def inspect_summary(document: str, summary: str) -> GuardReport:
    """Apply every rule of the module docstring to ``summary`` of ``document``."""
    tokens = words(summary)
    if not tokens:
        return GuardReport(("empty",), {"words": 0.0})
    article = words(document)
    span = longest_common_span(tokens, article) if article else 0
    measures = {
        "words": float(len(tokens)),
        "longest_copied_span": float(span),
        "copied_article_fraction": span / len(article) if article else 0.0,
        "function_word_rate": function_word_rate(tokens),
        "repeated_ngram_rate": repeated_ngram_rate(tokens),
    }
    flags = []
    match = _INJECTION_RE.search(summary)
    if match:
        flags.append("injection")
    if len(tokens) < MIN_WORDS:
        flags.append("too_short")
    if len(tokens) > MAX_WORDS:
        flags.append("too_long")
    if measures["copied_article_fraction"] > MAX_COPIED_ARTICLE_FRACTION:
        flags.append("copy")
    if (
        len(tokens) >= MIN_PROSE_CHECK_WORDS
        and measures["function_word_rate"] < MIN_FUNCTION_WORD_RATE
    ):
        flags.append("not_prose")
    if measures["repeated_ngram_rate"] > MAX_REPEATED_NGRAM_RATE:
        flags.append("repetition")
    return GuardReport(tuple(flags), measures, match.group(0) if match else None)
