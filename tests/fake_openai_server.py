"""A loopback OpenAI-compatible server that imitates the quirks of real ones (tests only).

Kinds (``FakeServer(kind=...)``), each with the behaviour of the real server that matters to a
client:

* ``"vllm"``: ``owned_by="vllm"``; sampling fields ``top_k`` (-1 or 0 = off),
  ``repetition_penalty``, ``min_p``; ``POST /tokenize {"model", "prompt"}`` -> ``{"count"}``;
  refuses a model name it does not serve (404).
* ``"llama.cpp"`` (llama-server): ``owned_by="llamacpp"``; the penalty is ``repeat_penalty``
  (``repetition_penalty`` is ignored); defaults top-k 40, top-p 0.95, min-p 0.05, temperature
  0.8 for fields left out; log-probs only with ``top_logprobs``; answers any model name with the
  model it loaded; ``POST /tokenize {"content"}`` -> ``{"tokens"}``.
* ``"llama-cpp-python"``: as llama.cpp, ``owned_by="me"``, and repeat penalty 1.1 by default.
* ``"openai"``: ``owned_by="system"``; refuses ``top_k`` and ``repetition_penalty`` (400); no
  tokenizer endpoint.

Every reply echoes the last user message and reports the sampling it *effectively* used in
``x_effective`` (so a test can check that "greedy" was greedy). Tokens are whitespace words.
Scripted trouble: ``loading`` (answer 503 to that many ``/models`` calls), ``fail_first`` (503 to
that many completions), ``status`` (answer every completion with it), ``delay_s`` (per request),
``token_latency_s`` (per completion token, with ``slots`` requests decoded at once, like
``llama-server -np N``), ``stop()`` (stop listening).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULTS = {
    "vllm": {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0,
             "repetition_penalty": 1.0, "presence_penalty": 0.0},
    "llama.cpp": {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05,
                  "repeat_penalty": 1.0, "presence_penalty": 0.0, "typical_p": 1.0},
    "openai": {"temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0},
}
DEFAULTS["llama-cpp-python"] = {**DEFAULTS["llama.cpp"], "repeat_penalty": 1.1}
OWNERS = {"vllm": "vllm", "llama.cpp": "llamacpp", "llama-cpp-python": "me", "openai": "system"}


class FakeServer:
    """See the module docstring. ``url`` is the API root (``.../v1``)."""

    def __init__(self, kind: str = "vllm", model: str = "fake", **trouble) -> None:
        self.kind, self.model = kind, model
        self.requests: list[dict] = []
        self.effective: list[dict] = []
        self.loading = 0
        self.fail_first = 0
        self.status = 200
        self.delay_s = 0.0
        self.token_latency_s = 0.0
        self.slots = 4
        self.reply_words: int | None = None
        for name, value in trouble.items():
            setattr(self, name, value)
        self._busy = threading.Semaphore(self.slots)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path != "/v1/models":
                    return self._send(404, {"error": f"no route {self.path}"})
                with server._lock:
                    loading = server.loading > 0
                    server.loading -= loading
                if loading:
                    return self._send(503, {"error": "Loading model"})
                self._send(200, {"data": [{"id": server.model,
                                           "owned_by": OWNERS[server.kind]}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    return self._tokenize(body)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": f"no route {self.path}"})
                with server._lock:
                    server.requests.append(body)
                    failing = server.fail_first > 0
                    server.fail_first -= failing
                time.sleep(server.delay_s)
                if failing:
                    return self._send(503, {"error": "busy"})
                if server.status != 200:
                    return self._send(server.status, {"error": "scripted failure"})
                code, payload = server.complete(body)
                self._send(code, payload)

            def _tokenize(self, body):
                if server.kind == "openai":
                    return self._send(404, {"error": "no tokenizer endpoint"})
                text = body.get("prompt") if server.kind == "vllm" else body.get("content")
                tokens = list(range(len(str(text).split())))
                payload = {"count": len(tokens), "tokens": tokens}
                self._send(200, payload if server.kind == "vllm" else {"tokens": tokens})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.root}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def complete(self, body: dict) -> tuple[int, dict]:
        """The reply to one chat completion request, as this kind of server gives it."""
        if self.kind == "vllm" and body.get("model") != self.model:
            return 404, {"error": f"The model `{body.get('model')}` does not exist."}
        if self.kind == "openai":
            extra = sorted(set(body) & {"top_k", "repetition_penalty", "min_p"})
            if extra:
                return 400, {"error": f"Unrecognized request argument supplied: {extra[0]}"}
        effective = {k: body.get(k, v) for k, v in DEFAULTS[self.kind].items()}
        if effective.get("top_k") == 0 and self.kind == "vllm":
            effective["top_k"] = -1
        with self._lock:
            self.effective.append(effective)
        question = body["messages"][-1]["content"]
        text = "echo: " + question
        if self.reply_words is not None:
            text = " ".join(["word"] * self.reply_words)
        words = text.split()[: body.get("max_tokens", 1 << 30)]
        text = " ".join(words)
        with self._busy:  # ``slots`` sequences decoded at once
            time.sleep(self.token_latency_s * len(words))
        choice = {"message": {"role": "assistant", "content": text},
                  "finish_reason": "stop", "index": 0}
        wants_logprobs = body.get("logprobs") and (
            self.kind not in ("llama.cpp", "llama-cpp-python") or body.get("top_logprobs"))
        if wants_logprobs:
            choice["logprobs"] = {"content": [{"token": w, "logprob": -0.5} for w in words]}
        served = self.model if self.kind != "vllm" else body["model"]
        prompt_words = sum(len(str(m["content"]).split()) for m in body["messages"])
        return 200, {"model": served, "choices": [choice], "x_effective": effective,
                     "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(words)}}

    def stop(self) -> None:
        """Stop answering (a crashed server): later connections are refused."""
        self.httpd.shutdown()
        self.httpd.server_close()

    close = stop
