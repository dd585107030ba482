"""The OpenAI-compatible backend against loopback fakes of vLLM, llama.cpp and OpenAI."""

from __future__ import annotations

import socket
import time

import pytest
from fake_openai_server import FakeServer

from spgg_env.agents.backend import GenerationParams, per_prompt_seeds
from spgg_env.agents.openai_backend import OpenAIBackend

GREEDY = GenerationParams(max_new_tokens=16)
FAST = {"backoff_s": 0.01, "startup_timeout_s": 2.0}


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": text}]


@pytest.fixture
def servers():
    made: list[FakeServer] = []

    def make(kind="vllm", **trouble) -> FakeServer:
        made.append(FakeServer(kind, **trouble))
        return made[-1]

    yield make
    for server in made:
        try:
            server.stop()
        except OSError:
            pass


def free_url() -> str:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.parametrize("kind", ["vllm", "llama.cpp", "llama-cpp-python"])
def test_greedy_is_greedy_on_every_server(servers, kind):
    server = servers(kind)
    backend = OpenAIBackend(server.url, "fake", **FAST)
    assert backend.kind == {"llama-cpp-python": "llama.cpp"}.get(kind, kind)
    out = backend.generate([chat("one two")], GREEDY)[0]
    assert out.text == "echo: one two" and out.finish_reason == "stop"
    used = server.effective[-1]
    assert used["temperature"] == 0.0 and used["top_p"] == 1.0 and used["min_p"] == 0.0
    assert used["top_k"] in (-1, 0)  # off, not the server's 40
    assert used.get("repetition_penalty", used.get("repeat_penalty")) == 1.0  # not 1.1


def test_llama_cpp_gets_its_own_parameter_names_and_logprobs(servers):
    server = servers("llama.cpp")
    backend = OpenAIBackend(server.url, "fake", logprobs=True, **FAST)
    params = GenerationParams(temperature=0.7, top_k=20, repetition_penalty=1.2,
                              presence_penalty=0.5, max_new_tokens=33)
    out = backend.generate([chat("a b c")], params, seed=[9])[0]
    sent = server.requests[-1]
    assert sent["repeat_penalty"] == 1.2 and "repetition_penalty" not in sent
    assert sent["top_k"] == 20 and sent["seed"] == 9 and sent["max_tokens"] == 33
    assert server.effective[-1]["repeat_penalty"] == 1.2
    assert out.logprobs == [-0.5] * 4  # llama.cpp sends them only with top_logprobs


def test_vllm_round_trip_seeds_usage_and_served_model(servers):
    server = servers("vllm")
    backend = OpenAIBackend(server.url, "fake", logprobs=True, **FAST)
    out = backend.generate([chat("one"), chat("two")], GREEDY, seed=5)
    assert [g.text for g in out] == ["echo: one", "echo: two"]
    assert out[0].prompt_tokens == 4 and out[0].completion_tokens == 2
    sent = sorted(server.requests, key=lambda b: b["messages"][-1]["content"])
    assert [b["seed"] for b in sent] == per_prompt_seeds(2, 5)
    assert backend.describe()["served_model"] == "fake"
    assert backend.describe()["server"] == "vllm"
    assert out[0].extra["server"] == server.url


def test_official_api_cannot_honour_top_k_and_says_so(servers):
    server = servers("openai")
    backend = OpenAIBackend(server.url, "fake", **FAST)
    with pytest.warns(UserWarning, match="top_k=5 cannot be sent"):
        out = backend.generate([chat("x")], GenerationParams(top_k=5, max_new_tokens=4))[0]
    assert out.finish_reason == "stop" and "top_k" not in server.requests[-1]
    assert backend.describe()["unsupported_params"] == ["top_k"]


def test_a_url_without_v1_is_named(servers):
    server = servers("vllm")
    with pytest.raises(ValueError, match="ends in /v1"):
        OpenAIBackend(server.root, "fake", **FAST)


def test_startup_waits_while_the_server_loads(servers):
    server = servers("llama.cpp", loading=3)
    backend = OpenAIBackend(server.url, "fake", backoff_s=0.01, startup_timeout_s=30)
    assert backend.served_model == "fake" and server.loading == 0


def test_a_server_that_never_loads_is_named_after_the_startup_timeout(servers):
    server = servers("vllm", loading=10_000)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"{server.url}/models did not become ready"):
        OpenAIBackend(server.url, "fake", backoff_s=0.01, startup_timeout_s=1.0)
    assert time.perf_counter() - start < 5


def test_a_model_the_server_does_not_list_is_refused(servers):
    server = servers("llama.cpp")  # would answer any name with what it loaded
    with pytest.raises(ValueError, match=r"does not list model 'qwen3-8b'.*\['fake'\]"):
        OpenAIBackend(server.url, "qwen3-8b", **FAST)


@pytest.mark.parametrize("kind", ["vllm", "llama.cpp"])
def test_effort_is_counted_by_the_servers_tokenizer(servers, kind):
    server = servers(kind)
    backend = OpenAIBackend(server.url, "fake", **FAST)
    out = backend.generate([chat("w1 w2 w3 w4 w5")], GREEDY)[0]
    assert backend.count_tokens(out.text) == out.completion_tokens == 6


def test_official_api_counts_its_own_generations_from_usage(servers):
    server = servers("openai")
    backend = OpenAIBackend(server.url, "fake", **FAST)
    out = backend.generate([chat("w1 w2")], GREEDY)[0]
    assert backend.count_tokens(out.text) == out.completion_tokens == 3
    with pytest.raises(ValueError, match="tokenizer="):
        backend.count_tokens("a text it never wrote")


def test_retries_a_busy_server_then_succeeds(servers):
    server = servers("vllm", fail_first=2)
    backend = OpenAIBackend(server.url, "fake", **FAST)
    out = backend.generate([chat("x")], GREEDY)[0]
    assert out.finish_reason == "stop" and len(server.requests) == 3


def test_a_dead_server_of_the_pool_is_replaced_by_another(servers):
    first, second = servers("vllm"), servers("vllm")
    backend = OpenAIBackend([first.url, second.url], "fake", **FAST)
    assert backend.base_url == first.url
    first.stop()
    out = backend.generate([chat("x")], GREEDY)[0]
    assert out.finish_reason == "stop" and out.extra["server"] == second.url
    keeps = OpenAIBackend([first.url, second.url], "fake", prefer=1, check=False, **FAST)
    assert keeps.base_url == second.url  # worker 1 keeps to server 1


def test_when_every_server_fails_the_error_names_them_after_the_window(servers):
    dead = free_url()
    busy = servers("vllm", fail_first=10_000)
    backend = OpenAIBackend([busy.url, dead], "fake", retry_window_s=0.5, check=False,
                            server="vllm", backoff_s=0.01)
    start = time.perf_counter()
    out = backend.generate([chat("x")], GREEDY)[0]
    assert 0.3 < time.perf_counter() - start < 3
    assert out.finish_reason == "error" and busy.url in out.error and dead in out.error


def test_client_errors_are_not_retried(servers):
    server = servers("vllm", status=400)
    backend = OpenAIBackend(server.url, "fake", **FAST)
    out = backend.generate([chat("x")], GREEDY)[0]
    assert out.finish_reason == "error" and "HTTP 400" in out.error
    assert len(server.requests) == 1


def test_a_timeout_is_recorded(servers):
    server = servers("vllm", delay_s=1.0)
    backend = OpenAIBackend(server.url, "fake", timeout_s=0.2, retry_window_s=0, **FAST)
    out = backend.generate([chat("x")], GREEDY)[0]
    assert out.finish_reason == "error" and "Timeout" in out.error


def test_requests_run_concurrently_and_keep_their_order(servers):
    server = servers("vllm", delay_s=0.3)
    backend = OpenAIBackend(server.url, "fake", concurrency=4, **FAST)
    start = time.perf_counter()
    out = backend.generate([chat(str(i)) for i in range(4)], GREEDY)
    assert [g.text for g in out] == [f"echo: {i}" for i in range(4)]
    assert time.perf_counter() - start < 1.0  # 4 x 0.3 s one after another


def test_the_session_keeps_at_most_its_slots_in_flight_and_returns_everything(servers):
    server = servers("vllm", token_latency_s=0.01)
    backend = OpenAIBackend(server.url, "fake", concurrency=3, **FAST)
    session = backend.session(max_batch=8)
    assert session.room() == 3
    submitted, got = 0, {}
    while len(got) < 7:
        while submitted < 7 and session.room() > 0:
            session.submit(submitted, chat(f"q{submitted}"), GREEDY, submitted)
            submitted += 1
        assert session.room() >= 0
        got.update(session.poll())
    assert sorted(got) == list(range(7))
    assert all(got[k].text == f"echo: q{k}" for k in got)


def test_unreachable_server_error_names_the_url():
    url = free_url()
    with pytest.raises(ConnectionError, match=f"{url}/models"):
        OpenAIBackend(url, "fake", startup_timeout_s=0.3, backoff_s=0.01)


def test_bad_base_url_is_named():
    with pytest.raises(ValueError, match="localhost:8000"):
        OpenAIBackend("localhost:8000/v1", "fake")
