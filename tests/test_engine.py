"""The engine's scheduling: order, seeds, refill, nothing lost or duplicated, failures kept."""

from __future__ import annotations

from collections import Counter

import pytest

from spgg_env.agents.backend import Generation, GenerationParams
from spgg_env.agents.engine import BatchSession, Engine, Request
from spgg_env.agents.scripted import ScriptedBackend
from spgg_env.seeding import GENERATION, derive_seed

PARAMS = GenerationParams(max_new_tokens=50)


class SteppedSession:
    """A token-by-token session: a request takes len(reply) polls' worth of decode steps."""

    def __init__(self, backend: SteppedBackend, max_batch: int) -> None:
        self.backend, self.max_batch = backend, max_batch
        self.active: dict = {}

    def room(self) -> int:
        return self.max_batch - len(self.active)

    def submit(self, key, prompt, params, seed) -> None:
        assert len(self.active) < self.max_batch, "admitted past the batch size"
        text = prompt[-1]["content"]
        self.active[key] = [int(text.split()[-1]), f"{text}->{seed % 1000}"]
        self.backend.admitted.append(text)

    def poll(self):
        self.backend.batch_sizes.append(len(self.active))
        done = []
        for key, state in list(self.active.items()):
            state[0] -= 1
            if state[0] <= 0:
                done.append((key, Generation(state[1], 1, 1)))
                del self.active[key]
        return done


class SteppedBackend(ScriptedBackend):
    def __init__(self) -> None:
        super().__init__()
        self.admitted: list = []
        self.batch_sizes: list[int] = []

    def session(self, max_batch: int) -> SteppedSession:
        return SteppedSession(self, max_batch)

    def generate(self, prompts, params, *, seed=None):
        """The same replies in one call (what lockstep and BatchSession use)."""
        return [Generation(f"{p[-1]['content']}->{s % 1000}", 1, 1)
                for p, s in zip(prompts, seed, strict=True)]


def program(index: int, lengths: list[int]):
    """Asks one request per entry of ``lengths`` (a decode length), in turn; returns the texts."""
    texts = []
    for turn, length in enumerate(lengths):
        (reply,) = yield [Request([{"role": "user", "content": f"p{index} t{turn} {length}"}],
                                  PARAMS, role=f"agent_{turn}")]
        texts.append(reply.text)
    return index, texts


def test_outcomes_come_in_program_order_and_nothing_is_lost_or_duplicated():
    backend = SteppedBackend()
    engine = Engine(backend, max_batch=3, schedule="continuous")
    lengths = [[5, 1, 1], [1, 1, 1], [2, 6, 1], [1, 1, 1], [3, 3, 3], [1, 9, 1], [2, 2, 2]]
    outcomes = list(engine.run(program(i, ls) for i, ls in enumerate(lengths)))
    assert [o[0] for o in outcomes] == list(range(7))
    assert all(len(texts) == 3 for _, texts in outcomes)
    counts = Counter(backend.admitted)
    assert len(counts) == 21 and set(counts.values()) == {1}  # every turn exactly once
    assert engine.stats["requests"] == 21


def test_continuous_keeps_the_batch_full_while_work_remains():
    backend = SteppedBackend()
    engine = Engine(backend, max_batch=4, schedule="continuous")
    lengths = [[(i * 7) % 5 + 1, (i * 3) % 4 + 1] for i in range(12)]
    list(engine.run(program(i, ls) for i, ls in enumerate(lengths)))
    total_work = sum(sum(ls) for ls in lengths)
    full = [b for b in backend.batch_sizes if b == 4]
    # only the tail may run below the batch size: at most the last few polls
    assert len(backend.batch_sizes) - len(full) <= 6
    assert sum(backend.batch_sizes) == total_work


def test_lockstep_waits_for_the_slowest_row_and_waves_do_not_overlap():
    backend = ScriptedBackend(lambda prompt, params, i: prompt[-1]["content"])
    engine = Engine(backend, max_batch=2, schedule="lockstep")
    lengths = [[1, 1], [1, 1], [1, 1]]
    outcomes = list(engine.run(program(i, ls) for i, ls in enumerate(lengths)))
    assert [o[0] for o in outcomes] == [0, 1, 2]
    # one call per position per wave of 2 programs: [p0t0, p1t0], [p0t1, p1t1], [p2t0], [p2t1]
    assert [[m[-1]["content"].split()[:2] for m in c["prompts"]] for c in backend.calls] == [
        [["p0", "t0"], ["p1", "t0"]], [["p0", "t1"], ["p1", "t1"]], [["p2", "t0"]],
        [["p2", "t1"]]]


def test_derived_seeds_do_not_depend_on_the_schedule_or_batch_size():
    def seeds_of(schedule: str, max_batch: int) -> list:
        backend = SteppedBackend()
        engine = Engine(backend, max_batch=max_batch, schedule=schedule, seed=11)
        return [o[1] for o in engine.run(program(i, [2, 1, 3]) for i in range(5))]

    reference = seeds_of("continuous", 4)
    assert seeds_of("continuous", 1) == reference == seeds_of("lockstep", 2)
    expected = derive_seed(11, GENERATION, 3, 1) % 1000  # program 3's second request
    assert reference[3][1].endswith(f"->{expected}")
    resumed = Engine(SteppedBackend(), max_batch=2, seed=11)
    assert [o[1] for o in resumed.run((program(i, [2, 1, 3]) for i in range(3, 5)),
                                      first_index=3)] == reference[3:]


def test_a_failed_generation_reaches_its_program_and_others_go_on():
    def flaky(prompt, params, i):
        if "p1 t0" in prompt[-1]["content"]:
            raise TimeoutError("server gone")
        return "ok"

    outcomes = list(Engine(ScriptedBackend(flaky), max_batch=2).run(
        program(i, [1, 1]) for i in range(3)))
    assert [o[1] for o in outcomes] == [["ok", "ok"], ["", "ok"], ["ok", "ok"]]


def test_requests_go_to_the_backend_they_name():
    a, b = ScriptedBackend("from a"), ScriptedBackend("from b")

    def two_models():
        first, second = yield [Request([{"role": "user", "content": "x"}], PARAMS, backend="a"),
                               Request([{"role": "user", "content": "y"}], PARAMS, backend="b")]
        return first.text, second.text

    assert list(Engine({"a": a, "b": b}).run([two_models()])) == [("from a", "from b")]
    with pytest.raises(ValueError, match="backend 'c'"):
        list(Engine({"a": a}).run([program(0, [1])] and [iter_bad("c")]))


def iter_bad(key: str):
    yield [Request([{"role": "user", "content": "x"}], PARAMS, backend=key)]


@pytest.mark.parametrize("bad", [[], "text", ["not a request"]])
def test_programs_that_break_the_contract_are_named(bad):
    def broken():
        yield bad

    with pytest.raises(TypeError, match="program 0"):
        list(Engine(ScriptedBackend()).run([broken()]))


def test_batch_session_sends_each_prompt_with_its_own_seed_in_calls_of_max_batch():
    backend = ScriptedBackend("x")
    session = BatchSession(backend, max_batch=2)
    for k in range(5):
        session.submit(k, [{"role": "user", "content": str(k)}], PARAMS, 100 + k)
    assert [key for key, _ in session.poll()] == [0, 1, 2, 3, 4]
    assert [c["seed"] for c in backend.calls] == [[100, 101], [102, 103], [104]]


@pytest.mark.parametrize(("kwargs", "match"), [({"schedule": "fifo"}, "fifo"),
                                               ({"max_batch": 0}, "max_batch")])
def test_bad_engine_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Engine(ScriptedBackend(), **kwargs)
