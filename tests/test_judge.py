"""The LLM judge: expected-score formula, batching with left padding, cache, lazy loading."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.judge import DIMENSIONS, Judge, OpenAIScorer, TransformersScorer, expected_score

DOC = "The council voted to build a library. It will cost 12 million dollars and open in 2027."
SUMMARIES = ["A library will be built for 12 million dollars.", "Council library.", "x" * 50]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A random 2-layer Llama with a byte tokenizer, saved as a transformers folder."""
    torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared CPU
    folder = tmp_path_factory.mktemp("tiny")
    return str(save_tiny_lm(folder, max_position_embeddings=4096))


def make_judge(tiny: str, **kwargs) -> Judge:
    return Judge(tiny, device="cpu", max_document_chars=200, **kwargs)


class FixedScorer:
    """A scorer that answers every prompt with one distribution, and counts its calls."""

    identity = "fixed@test"

    def __init__(self, probs):
        self.probs, self.calls = list(probs), 0

    def distributions(self, prompts):
        self.calls += len(prompts)
        return [self.probs for _ in prompts]


def test_expected_score() -> None:
    assert expected_score([0, 0, 1, 0, 0]) == (3.0, 1.0)
    assert expected_score([0.1, 0, 0, 0, 0.1]) == pytest.approx((3.0, 0.2))
    assert expected_score([0.0, 0.0, 0.0, 0.3, 0.1]) == pytest.approx((4.25, 0.4))
    assert expected_score([0.0] * 5) == (3.0, 0.0)


@pytest.mark.parametrize(
    ("probs", "value"), [([0, 0, 0, 0, 1], 1.0), ([1, 0, 0, 0, 0], 0.0), ([0, 0, 1, 0, 0], 0.5)]
)
def test_value_is_mean_of_normalised_dimensions(probs, value) -> None:
    result = Judge(scorer=FixedScorer(probs)).score(DOC, SUMMARIES[0])
    assert result.value == pytest.approx(value)
    assert set(result.scores) == set(DIMENSIONS)
    assert result.to_json()["normalised"]["fluency"] == pytest.approx(value)


def test_score_tokens_of_byte_tokenizer(tiny) -> None:
    scorer = TransformersScorer(tiny, device="cpu")
    assert [len(ids) for ids in scorer.token_ids] == [1] * 5
    assert len({ids[0] for ids in scorer.token_ids}) == 5


@pytest.mark.parametrize("batch_size", [3, 8])
def test_tiny_model_batched_equals_one_by_one(tiny, batch_size) -> None:
    batched = make_judge(tiny, batch_size=batch_size).score_many([(DOC, s) for s in SUMMARIES])
    single = make_judge(tiny, batch_size=1)
    for summary, together in zip(SUMMARIES, batched, strict=True):
        alone = single.score(DOC, summary)
        assert 0.0 <= together.value <= 1.0
        assert alone.scores == pytest.approx(together.scores, abs=1e-5)
        assert all(0.0 < m <= 1.0 for m in together.mass.values())
    # different summaries get different distributions from the (random) model
    assert batched[0].scores != batched[1].scores


def test_probabilities_match_a_plain_forward_pass(tiny) -> None:
    loaded = TransformersScorer(tiny, device="cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    scorer = TransformersScorer(model, tokenizer)  # an in-memory model works the same
    prompt = "Rate this: 1 to 5"
    (probs,) = scorer.distributions([prompt])
    ids = torch.tensor([tokenizer.encode(scorer.render(prompt), add_special_tokens=False)])
    with torch.no_grad():
        full = torch.softmax(model(ids).logits[0, -1], -1)
    expected = [float(full[tokenizer.encode(d, add_special_tokens=False)[0]]) for d in "12345"]
    assert probs == pytest.approx(expected, rel=1e-4)


def test_cache_in_memory_and_on_disk(tmp_path) -> None:
    path = tmp_path / "judge.jsonl"
    scorer = FixedScorer([0, 0, 0, 1, 0])
    judge = Judge(scorer=scorer, cache_path=path)
    first = judge.score_many([(DOC, SUMMARIES[0]), (DOC, SUMMARIES[0]), (DOC, SUMMARIES[1])])
    assert scorer.calls == 8  # duplicates share one forward pass
    assert judge.score(DOC, SUMMARIES[0]) == first[0]
    assert scorer.calls == 8 and judge.hits == 4 + 4
    # a new judge reads the file back and never calls its model
    again = FixedScorer([1, 0, 0, 0, 0])
    reread = Judge(scorer=again, cache_path=path).score(DOC, SUMMARIES[1])
    assert again.calls == 0 and reread.value == pytest.approx(0.75)
    # another model identity does not reuse those entries
    other = FixedScorer([1, 0, 0, 0, 0])
    other.identity = "other@test"
    assert Judge(scorer=other, cache_path=path).score(DOC, SUMMARIES[1]).value == 0.0


def test_default_model_loads_lazily() -> None:
    judge = Judge(cache_path=None)
    assert judge._scorer is None
    assert "SmolLM2-135M" in judge.identity and judge._scorer is None


def test_long_inputs_are_cut() -> None:
    judge = Judge(scorer=FixedScorer([0, 0, 1, 0, 0]), max_document_chars=30, max_summary_chars=10)
    prompt = judge.prompt("relevance", "word " * 100, "summary " * 10)
    assert prompt.count("word") == 6 and "[...]" in prompt
    assert "Summary:\nsummary su [...]\n" in prompt


def test_bad_arguments(tiny) -> None:
    with pytest.raises(ValueError, match="unknown or no dimensions"):
        Judge(dimensions=["beauty"])
    with pytest.raises(ValueError, match="tokenizer"):
        TransformersScorer(TransformersScorer(tiny, device="cpu").model)
    with pytest.raises(ValueError, match="batch_size"):
        TransformersScorer(tiny, batch_size=0)
    with pytest.raises(ValueError, match=r"unknown Judge options \['batchsize'\]"):
        Judge(batchsize=4)


def test_openai_scorer_reads_top_logprobs() -> None:
    seen = []

    def server(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        top = [
            {"token": "4", "logprob": math.log(0.6)},
            {"token": " 4", "logprob": math.log(0.1)},
            {"token": "5", "logprob": math.log(0.2)},
            {"token": "The", "logprob": -3.0},
        ]
        return httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "logprobs": {
                            "content": [
                                {"token": "4", "logprob": math.log(0.6), "top_logprobs": top}
                            ]
                        }
                    }
                ]
            },
        )

    scorer = OpenAIScorer("http://judge.test/v1", "m", transport=httpx.MockTransport(server))
    verdict = Judge(scorer=scorer, dimensions=["fluency"]).score(DOC, SUMMARIES[0])
    assert scorer.identity == "m@http://judge.test/v1"
    assert verdict.scores["fluency"] == pytest.approx((4 * 0.7 + 5 * 0.2) / 0.9)
    assert verdict.mass["fluency"] == pytest.approx(0.9)
    assert seen[0]["max_tokens"] == 1 and seen[0]["logprobs"] is True

    def no_logprobs(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"content": "4"}}]})

    bare = OpenAIScorer("http://judge.test/v1", "m", transport=httpx.MockTransport(no_logprobs))
    with pytest.raises(RuntimeError, match="judge.test.*logprobs"):
        bare.distributions(["x"])
    with pytest.raises(ValueError, match="http"):
        OpenAIScorer("judge.test", "m")


@pytest.mark.slow
def test_correlation_example_runs(tiny, tmp_path) -> None:
    """Smoke test of examples/judge_correlation.py with a tiny random model folder."""
    folder = tiny
    script = Path(__file__).parents[1] / "examples" / "judge_correlation.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--model",
            str(folder),
            "--limit",
            "1",
            "--device",
            "cpu",
            "--cache-path",
            str(tmp_path / "cache.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 summaries" in done.stdout and "overall" in done.stdout
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 16


def test_rank_correlations_of_the_example() -> None:
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / "judge_correlation.py"
    spec = importlib.util.spec_from_file_location("judge_correlation", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert list(example.average_ranks([3.0, 1.0, 3.0, 2.0])) == [3.5, 1.0, 3.5, 2.0]
    assert example.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert example.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # tau-b by hand: pairs of x=[1,2,2,3], y=[1,3,2,3]: S = 4, untied x 5, untied y 5
    assert example.kendall_tau_b([1, 2, 2, 3], [1, 3, 2, 3]) == pytest.approx(4 / 5)
