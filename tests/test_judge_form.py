"""The judge reads every summary in one surface form, SummEval's (``summeval_form``).

The experts rated lower-cased, tokenised machine summaries; agents write raw text. A judge fitted
on the first form and shown the second pays for the form: through prompt v2 the head paid
lead-3 in raw form 0.978 on 10 articles, first of 16 on every one, against 0.858 for its
tokenised twin (system M0, which the experts rank 4.1th). These tests pin the form, its fit to
the data, and the lead-3 verdict.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from spgg_env.judge import Judge
from spgg_env.judge.prompt import rating_prompt, summeval_form
from spgg_env.judge.redteam import lead3
from spgg_env.judge_features import article_order

REAL = Path(__file__).parents[1].parent / "shared" / "data" / "summeval" / "test.jsonl"
SYSTEMS = Path(__file__).parents[1] / "spgg_env" / "judge" / "summeval_systems.json"
needs_real_data = pytest.mark.skipif(
    not REAL.is_file(), reason=f"SummEval expert data not found at {REAL} (see DESIGN.md)"
)
#: The systems whose summaries the SummEval release ships lower-cased and tokenised.
TOKENISED = ("M0", "M1", "M2", "M5", "M8", "M9", "M10", "M11", "M12", "M13", "M14", "M15")


@pytest.mark.parametrize(("raw", "form"), [
    ("(CNN)Donald Sterling's wife sued.", "-lrb- cnn -rrb- donald sterling 's wife sued ."),
    ('She said "Barbara," and left.', "she said `` barbara , '' and left ."),
    ("It paid $2.6 million (50%) to 14,000 fans at 12:15.",
     "it paid $ 2.6 million -lrb- 50 % -rrb- to 14,000 fans at 12:15 ."),
    ("Don't go. The U.S. and Mr. V. Stiviano won.",
     "do n't go . the u.s. and mr. v. stiviano won ."),
    ("The players' 'home sweet home'. 'I'm fine.'",
     "the players ' ` home sweet home ' . ` i 'm fine . '"),
    ("\u201cQuoted\u201d \u2013 it\u2019s typographic.", "`` quoted '' -- it 's typographic ."),
])
def test_summeval_form(raw: str, form: str) -> None:
    assert summeval_form(raw) == form
    assert summeval_form(form) == form


def test_case_and_spacing_do_not_change_what_the_judge_reads() -> None:
    """Raw, lower-cased and tokenised versions of one summary are one prompt, one cache key."""
    judge = Judge(scorer=None)
    versions = ["Donald Sterling's wife sued her.", "donald sterling's wife sued her.",
                "donald sterling 's wife sued her ."]
    prompts = [judge.prompt("fluency", "An article.", text) for text in versions]
    assert len({p.summary for p in prompts}) == 1
    assert len({judge.key(p) for p in prompts}) == 1
    assert prompts[0].summary == "donald sterling 's wife sued her ."
    assert rating_prompt("A.", "B.", "fluency", 4000, 1500).document == "A."  # article: raw


def _rows() -> list[dict]:
    return [json.loads(line) for line in REAL.read_text(encoding="utf-8").splitlines()]


@needs_real_data
def test_form_is_idempotent_and_leaves_the_tokenised_data_as_it_is() -> None:
    """On all 2,800 texts the form is a fixed point of itself; of the 1,200 summaries the
    release ships tokenised it changes under 5 %, and those by a few tokens (a raw bracket, a
    typographic quote, ``'90s``, ``!!!!!``: the release's own inconsistencies)."""
    rows = _rows()
    systems = json.loads(SYSTEMS.read_text(encoding="utf-8"))["systems"]
    texts = [t for r in rows for t in r["machine_summaries"] + r["human_summaries"]]
    texts += [r["text"] for r in rows]
    assert [t for t in texts if summeval_form(summeval_form(t)) != summeval_form(t)] == []
    changed = [s for r in rows for s, m in zip(r["machine_summaries"], systems[r["id"]],
                                               strict=True)
               if m in TOKENISED and summeval_form(s) != s]
    assert len(changed) < 60  # of 1,200
    for summary in changed:
        same = difflib.SequenceMatcher(None, summary.split(), summeval_form(summary).split(),
                                       autojunk=False).ratio()
        assert same > 0.9, summary


@pytest.mark.slow
@needs_real_data
def test_head_pays_raw_lead3_what_it_pays_its_tokenised_twin() -> None:
    """The default judge on the first two articles of the seeded order: lead-3 as an agent
    writes it scores within 0.05 of the same sentences as SummEval ships them (system M0, whose
    expert scores the head was fitted on). Before the judge read one form, raw lead-3 scored
    0.06-0.21 above its twin on each of 10 articles (0.978 against 0.858 on average) and ranked
    first of the 16 machine summaries on all 10 (``examples/judge_robustness.py``)."""
    rows = _rows()
    systems = json.loads(SYSTEMS.read_text(encoding="utf-8"))["systems"]
    judge = Judge(method="head", device="cpu")
    for index in article_order(len(rows))[:2]:
        row = rows[index]
        twin = row["machine_summaries"][systems[row["id"]].index("M0")]
        raw, tokenised = judge.score_many([(row["text"], lead3(row["text"])), (row["text"], twin)])
        assert raw.error is None and tokenised.error is None
        assert abs(raw.value - tokenised.value) < 0.05, (row["id"], raw.value, tokenised.value)


def test_features_of_another_prompt_version_are_refused(tmp_path) -> None:
    """A features folder read with the raw-text prompt (v2, files without a version) cannot
    feed a v3 head: loading, resuming a pass and seeding a cache all refuse it."""
    import numpy as np

    from spgg_env.judge.prompt import PROMPT_VERSION
    from spgg_env.judge_features import extract_dataset, load_features

    record = {"article": np.array(0), "probs": np.zeros((1, 4, 5)),
              "body_mean": np.zeros((1, 2, 3)), "expert": np.ones((1, 4))}
    np.savez(tmp_path / "000.npz", **record)
    with pytest.raises(ValueError, match="judge prompt v2.*extract again"):
        load_features(tmp_path)
    with pytest.raises(ValueError, match="judge prompt v2"):
        extract_dataset(None, [{"text": "a", "machine_summaries": ["b"]}], tmp_path,
                        limit=1, progress=lambda line: None)
    np.savez(tmp_path / "000.npz", **record, prompt_version=np.array(PROMPT_VERSION))
    assert load_features(tmp_path)["body_mean"].shape == (1, 1, 2, 3)
