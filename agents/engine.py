"""The episode engine: the one loop that turns programs' LLM requests into batched generations.

Everything in the package that talks to an LLM is a **program**: a generator that yields a list
of :class:`Request` objects, receives the matching list of
:class:`~spgg_env.agents.backend.Generation` results, and finally returns its outcome. An episode
of the text game is one (:func:`spgg_env.agents.episodes.play_episode`: each agent's turn is one
request); so is every comparison method of the benchmark (a debate round is a list of
requests). The engine drives many programs at once over the backends::

    engine = Engine({"model": backend}, max_batch=16)
    for outcome in engine.run(programs):      # outcomes in program order
        ...

**Scheduling.** ``schedule="continuous"`` (default) keeps the batch full: as soon as a request
finishes, its program advances and its next request (the next agent of that episode), or a new
program's first request (a new episode), takes the free slot. A backend that decodes
token by token offers a native :class:`Session` (``backend.session(max_batch)``) that admits
requests between decoding steps; any other backend is driven by :class:`BatchSession`, which
sends whatever is queued in calls of ``max_batch``. ``schedule="lockstep"`` plays programs in
waves of ``max_programs``: every round gathers all live programs' requests and sends them
together, and a new wave starts when the last program of the wave has finished (each agent
position then waits for the slowest row of its batch; kept as the reference the continuous
schedule is checked against).

**Seeds.** A request without a seed gets ``derive_seed(seed, GENERATION, index, k)``: ``index``
is the program's index in the run and ``k`` counts the requests it has made. So a generation's
sampling seed never depends on batching, scheduling or worker count (see
:mod:`spgg_env.seeding`), and a backend that samples each row from its own seed gives the same
texts under both schedules.

**Failures.** Backends never raise for one bad prompt: a failed generation comes back with
``finish_reason="error"`` and the program decides (an episode plays it as the empty
contribution, scored 0, and records the error). An exception inside a program, or a backend
that breaks its contract, stops the run with that exception.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from spgg_env.agents.backend import Backend, ChatPrompt, Generation, GenerationParams
from spgg_env.seeding import GENERATION, derive_seed

SCHEDULES = ("continuous", "lockstep")


@dataclass(frozen=True)
class Request:
    """One LLM call a program asks for.

    Attributes:
        prompt: The chat prompt.
        params: Its generation parameters.
        role: Who speaks (``"agent_1"``, ``"coordinator"``...), for records.
        backend: Key of the backend that serves it (the engine's ``backends`` mapping).
        seed: Sampling seed; ``None`` lets the engine derive one (see the module docstring).
        meta: The requesting policy's own data (e.g. the state a learned policy chose the
            parameters from); never sent to a backend, never compared.
    """

    prompt: ChatPrompt
    params: GenerationParams
    role: str = "agent"
    backend: str = "default"
    seed: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


#: A program: yields request lists, receives their generations, returns its outcome.
Program = Generator[list[Request], list[Generation], Any]


@runtime_checkable
class Session(Protocol):
    """A backend's stream of requests: admit some, advance, collect what has finished."""

    def room(self) -> int:
        """How many more requests the session admits now."""
        ...

    def submit(self, key: Hashable, prompt: ChatPrompt, params: GenerationParams,
               seed: int) -> None:
        """Admit one request; ``key`` comes back with its generation."""
        ...

    def poll(self) -> list[tuple[Hashable, Generation]]:
        """Advance until at least one admitted request has finished (if any is admitted);
        return the finished ones as ``(key, generation)``."""
        ...


class BatchSession:
    """:class:`Session` over any backend's ``generate``: each poll sends what is queued, in
    calls of ``max_batch`` prompts, each prompt with its own seed."""

    def __init__(self, backend: Backend, max_batch: int) -> None:
        self.backend = backend
        self.max_batch = int(max_batch)
        self.queue: list[tuple[Hashable, ChatPrompt, GenerationParams, int]] = []

    def room(self) -> int:
        return 1 << 30  # queues everything; poll cuts it into calls

    def submit(self, key: Hashable, prompt: ChatPrompt, params: GenerationParams,
               seed: int) -> None:
        self.queue.append((key, prompt, params, seed))

    def poll(self) -> list[tuple[Hashable, Generation]]:
        batch, self.queue = self.queue, []
        out: list[tuple[Hashable, Generation]] = []
        for start in range(0, len(batch), self.max_batch):
            chunk = batch[start : start + self.max_batch]
            got = self.backend.generate([c[1] for c in chunk], [c[2] for c in chunk],
                                        seed=[c[3] for c in chunk])
            if len(got) != len(chunk):
                raise RuntimeError(f"backend {type(self.backend).__name__} returned {len(got)} "
                                   f"generations for {len(chunk)} prompts")
            out += [(c[0], g) for c, g in zip(chunk, got, strict=True)]
        return out


@dataclass
class _Live:
    """A program that has started and not finished."""

    program: Program
    requests: list[Request] = field(default_factory=list)
    results: list[Generation | None] = field(default_factory=list)
    remaining: int = 0
    calls: int = 0


class Engine:
    """Drives programs over backends (see the module docstring).

    Args:
        backends: Backend per key (a single backend is keyed ``"default"``).
        max_batch: Most requests decoded together per backend.
        schedule: ``"continuous"`` or ``"lockstep"``.
        max_programs: Most programs alive at once (default ``2 * max_batch`` in continuous
            mode, so the batch can refill while programs wait; ``max_batch`` in lockstep mode:
            the wave).
        seed: Root of the derived sampling seeds.

    Raises:
        ValueError: On an unknown schedule or a non-positive size.
    """

    def __init__(
        self,
        backends: Mapping[str, Backend] | Backend,
        *,
        max_batch: int = 8,
        schedule: str = "continuous",
        max_programs: int | None = None,
        seed: int = 0,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if max_batch < 1 or (max_programs is not None and max_programs < 1):
            raise ValueError(f"max_batch and max_programs must be >= 1, got {max_batch}, "
                             f"{max_programs}")
        self.backends = dict(backends) if isinstance(backends, Mapping) else {"default": backends}
        self.max_batch = int(max_batch)
        self.schedule = schedule
        default = 2 * max_batch if schedule == "continuous" else max_batch
        self.max_programs = int(max_programs or default)
        self.seed = int(seed)
        self.stats: dict[str, float] = {"requests": 0, "generation_s": 0.0}

    def _session(self, key: str) -> Session:
        backend = self.backends[key]
        native = getattr(backend, "session", None)
        if self.schedule == "continuous" and callable(native):
            return native(self.max_batch)
        return BatchSession(backend, self.max_batch)

    def run(self, programs: Iterable[Program], *, first_index: int = 0) -> Iterator[Any]:
        """Run ``programs`` and yield their outcomes in program order.

        Args:
            programs: Programs, started lazily (at most ``max_programs`` alive at once).
            first_index: Index of the first program (its requests' derived seeds use it), so a
                resumed run continues the same seed streams.
        """
        source = iter(enumerate(programs, start=first_index))
        exhausted = False
        live: dict[int, _Live] = {}
        finished: dict[int, Any] = {}
        sessions: dict[str, Session] = {}
        pending: dict[str, deque[tuple[int, int]]] = {key: deque() for key in self.backends}
        admitted = 0
        next_out = first_index

        def advance(index: int, sent: list[Generation] | None) -> None:
            state = live[index]
            try:
                requests = state.program.send(sent)
            except StopIteration as stop:
                finished[index] = stop.value
                del live[index]
                return
            state.requests = self._checked(requests, index, state)
            state.results = [None] * len(state.requests)
            state.remaining = len(state.requests)
            for slot, request in enumerate(state.requests):
                pending[request.backend].append((index, slot))

        while True:
            may_start = self.schedule == "continuous" or not live
            while may_start and not exhausted and len(live) < self.max_programs:
                try:
                    index, program = next(source)
                except StopIteration:
                    exhausted = True
                    break
                live[index] = _Live(program)
                advance(index, None)
            while next_out in finished:
                yield finished.pop(next_out)
                next_out += 1
            if not live and exhausted:
                return
            for key, queue in pending.items():  # admit what the sessions have room for
                if not queue:
                    continue
                session = sessions.get(key) or sessions.setdefault(key, self._session(key))
                while queue and session.room() > 0:
                    index, slot = queue.popleft()
                    request = live[index].requests[slot]
                    session.submit((index, slot), request.prompt, request.params, request.seed)
                    admitted += 1
            if admitted == 0:
                raise RuntimeError("engine stalled: programs wait but no request is admitted")
            start = time.perf_counter()
            ready: set[int] = set()
            for session in list(sessions.values()):
                for (index, slot), generation in session.poll():
                    admitted -= 1
                    state = live[index]
                    state.results[slot] = generation
                    state.remaining -= 1
                    if state.remaining == 0:
                        ready.add(index)
            self.stats["generation_s"] += time.perf_counter() - start
            for index in sorted(ready):
                advance(index, list(live[index].results))

    def _checked(self, requests: Any, index: int, state: _Live) -> list[Request]:
        """Validate a program's yield and fill in derived seeds."""
        if not isinstance(requests, Sequence) or isinstance(requests, str) or not requests:
            raise TypeError(f"program {index} must yield a non-empty list of Request, got "
                            f"{requests!r:.80}")
        out = []
        for request in requests:
            if not isinstance(request, Request):
                raise TypeError(f"program {index} yielded {type(request).__name__}, not Request")
            if request.backend not in self.backends:
                raise ValueError(f"program {index} asked for backend {request.backend!r}; the "
                                 f"engine has {sorted(self.backends)}")
            if request.seed is None:
                request = replace(request, seed=derive_seed(self.seed, GENERATION, index,
                                                            state.calls))
            state.calls += 1
            out.append(request)
        self.stats["requests"] += len(out)
        return out
