"""Grade a function across a process boundary: the candidate computes, a trusted process judges.

Two processes take part in grading a candidate function (see :meth:`Sandbox.check
<spgg_env.sandbox.Sandbox.check>` for how they are started and isolated):

* the **candidate process** (sandboxed, untrusted) runs the candidate's module once, then serves
  calls for as long as the check lasts (:func:`serve`), so module state persists between calls
  as in an ordinary test run. It never sees the tests, the expected values or the verdict;
* the **trusted process** runs the test code, with pristine builtins and the helpers of the
  reference prompt, against a :class:`CandidateProxy` that stands in for the function
  (:func:`grade`). It alone decides pass or fail.

Only **plain data** crosses, in both directions, as JSON text of a tagged tree
(:func:`encode` / :func:`decode`)::

    None, bool, str           -> null, true/false, "..."
    int                       -> a JSON number (|n| < 2**63), else {"int": "<hex>"}
    float (nan, inf too)      -> a JSON number (NaN, Infinity, -Infinity)
    list                      -> [...]
    tuple, set, frozenset     -> {"tuple": [...]}, {"set": [...]}, {"frozenset": [...]}
    dict                      -> {"dict": [[key, value], ...]}
    bytes                     -> {"bytes": "<hex>"}

A subclass travels as its base type (an ``int`` subclass arrives as an ``int``, so its
``__eq__`` never runs where the verdict is made); anything else (a function, a generator, an
object with a spoofed ``__class__``) is not plain data, and the test fails with the reason
``"return value is not plain data: <type>"``. The trusted side rebuilds values from the text
alone, so no byte sequence the candidate writes can yield anything but plain data. A message is
a 4-byte big-endian length and that many bytes; a reply longer than ``max_reply_bytes``, a
reply that is not a well-formed tagged tree, a hang past the per-call or the total time limit,
or the candidate process dying, fails the test with a reason that names the call.

This module is loaded by path into the sandbox's fork server (``python -I -S``), so it uses
the standard library only.
"""

from __future__ import annotations

import builtins
import json
import math
import random
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

#: Nesting depth of a value beyond which it is not plain data (guards recursion).
MAX_DEPTH = 100
#: Largest int sent as a plain JSON number; larger ones travel as hex (no digit limit).
_SMALL_INT = 1 << 63
_HEADER = struct.Struct(">I")
_TAGS = ("tuple", "set", "frozenset", "dict", "int", "bytes")
#: Builtin exception types the trusted side may re-raise under their own name.
_EXCEPTIONS = {
    name: cls
    for name, cls in vars(builtins).items()
    if isinstance(cls, type) and issubclass(cls, BaseException)
}


class NotPlainData(TypeError):
    """A value holds something other than the plain builtin types listed in the module doc."""


class ChannelClosed(EOFError):
    """The other process closed its end of the channel."""


class ReplyTooLarge(ValueError):
    """A message announced more bytes than the reader accepts."""


# ------------------------------------------------------------------------------- the codec
def encode(value: Any) -> bytes:
    """Serialise plain data to the tagged JSON text (UTF-8).

    Raises:
        NotPlainData: If ``value`` holds anything but the plain types, or nests deeper than
            :data:`MAX_DEPTH`.
    """
    return json.dumps(_tag(value, 0), separators=(",", ":")).encode("utf-8", "surrogatepass")


def decode(data: bytes) -> Any:
    """Rebuild plain data from :func:`encode`'s text; builtin types only.

    Raises:
        ValueError: If ``data`` is not a well-formed tagged tree (also for unhashable set
            members or dict keys, and for nesting too deep to parse).
    """
    try:
        text = data.decode("utf-8", "surrogatepass")
        return json.loads(text, object_pairs_hook=_untag)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        raise ValueError(f"not a tagged plain-data tree: {type(exc).__name__}") from None


def _tag(value: Any, depth: int) -> Any:
    """The JSON-ready tree of ``value``, reading subclasses through their base type's slots."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH} levels")
    kind = type(value)  # type() cannot be spoofed, unlike __class__ and isinstance
    if value is None or kind is bool:
        return value
    if issubclass(kind, int):
        number = int.__int__(value)
        return number if -_SMALL_INT < number < _SMALL_INT else {"int": hex(number)}
    if issubclass(kind, float):
        return float.__float__(value)
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, bytes):
        return {"bytes": bytes.hex(value)}
    if issubclass(kind, list):
        return [_tag(item, depth + 1) for item in list.__iter__(value)]
    if issubclass(kind, tuple):
        return {"tuple": [_tag(item, depth + 1) for item in tuple.__iter__(value)]}
    if issubclass(kind, frozenset):
        return {"frozenset": [_tag(item, depth + 1) for item in frozenset.__iter__(value)]}
    if issubclass(kind, set):
        return {"set": [_tag(item, depth + 1) for item in set.__iter__(value)]}
    if issubclass(kind, dict):
        pairs = dict.items(value)
        return {"dict": [[_tag(k, depth + 1), _tag(v, depth + 1)] for k, v in pairs]}
    raise NotPlainData(type_name(value))


def _untag(pairs: list[tuple[str, Any]]) -> Any:
    """``json.loads`` hook: turn one tagged object into its value (children come first)."""
    if len(pairs) != 1 or pairs[0][0] not in _TAGS:
        raise ValueError("an object must have exactly one known tag")
    tag, body = pairs[0]
    if tag in ("int", "bytes"):
        if type(body) is not str:
            raise ValueError(f"{tag} body must be a string")
        return int(body, 16) if tag == "int" else bytes.fromhex(body)
    if type(body) is not list:
        raise ValueError(f"{tag} body must be a list")
    if tag == "tuple":
        return tuple(body)
    if tag == "set":
        return set(body)
    if tag == "frozenset":
        return frozenset(body)
    if not all(type(pair) is list and len(pair) == 2 for pair in body):
        raise ValueError("dict body must be [key, value] pairs")
    return {key: item for key, item in body}


def type_name(value: Any) -> str:
    """A short printable name of ``value``'s real type (never calls the value's methods)."""
    name = getattr(type(value), "__qualname__", None)
    if type(name) is not str:
        name = "?"
    return "".join(ch if ch.isprintable() else "?" for ch in name)[:80]


# ----------------------------------------------------------------------------- the channel
def send_message(sock: socket.socket, payload: bytes, deadline: float | None = None) -> None:
    """Send one length-prefixed message (before ``deadline``, a ``time.monotonic()`` value).

    Raises:
        TimeoutError: If the deadline passes first.
        ChannelClosed: If the other end is gone.
    """
    try:
        sock.settimeout(_remaining(deadline))
        sock.sendall(_HEADER.pack(len(payload)) + payload)
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise ChannelClosed(str(exc)) from None


def recv_message(sock: socket.socket, limit: int, deadline: float | None = None) -> bytes:
    """Receive one length-prefixed message of at most ``limit`` bytes.

    Raises:
        ReplyTooLarge: If the announced length exceeds ``limit`` (the payload is not read).
        TimeoutError, ChannelClosed: As in :func:`send_message`.
    """
    (length,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size, deadline))
    if length > limit:
        raise ReplyTooLarge(f"{length} bytes announced, limit {limit}")
    return _recv_exactly(sock, length, deadline)


def _recv_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        try:
            sock.settimeout(_remaining(deadline))
            chunk = sock.recv(min(left, 1 << 20))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise ChannelClosed("the other end closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


# ------------------------------------------------------------------- the candidate's side
def serve(sock: socket.socket, source: str, entry_point: str, filename: str) -> None:
    """Run the candidate's module, then answer calls of ``entry_point`` until the channel closes.

    Runs in the sandboxed candidate process. The first message says whether the module loaded
    (``["ready"]``, ``["import_error", type, message]`` or ``["no_entry_point", type]``);
    each call ``[args, kwargs]`` is answered with ``["returned", value]``,
    ``["raised", builtin type, message]`` or ``["not_plain", type]``.
    """
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename}
    try:
        exec(compile(source, filename, "exec"), namespace)
    except BaseException as exc:  # noqa: BLE001 - reported to the grader, which fails the test
        send_message(sock, encode(["import_error", _builtin_base(exc), _message(exc)]))
        return
    function = namespace.get(entry_point)
    if not callable(function):
        send_message(sock, encode(["no_entry_point", type_name(function)]))
        return
    _flush()
    send_message(sock, encode(["ready"]))
    while True:
        try:
            args, kwargs = decode(recv_message(sock, 1 << 30))
        except ChannelClosed:
            return
        reply = _call(function, args, kwargs)
        _flush()  # the process is killed, not ended, when the check is over
        send_message(sock, reply)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or replaced stream is the candidate's
            pass


def _call(function: Callable[..., Any], args: list, kwargs: dict) -> bytes:
    try:
        result = function(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the candidate's exception is the answer
        return encode(["raised", _builtin_base(exc), _message(exc)])
    try:
        return encode(["returned", result])
    except NotPlainData as exc:
        return encode(["not_plain", str(exc)])
    except BaseException:  # noqa: BLE001 - e.g. a dict subclass whose items() raises
        return encode(["not_plain", type_name(result)])


def _builtin_base(exc: BaseException) -> str:
    """The name of the first builtin exception type in ``exc``'s class hierarchy."""
    for cls in type(exc).__mro__:
        if _EXCEPTIONS.get(cls.__name__) is cls:
            return cls.__name__
    return "Exception"


def _message(exc: BaseException) -> str:
    try:
        text = str.__str__(str(exc))
    except BaseException:  # noqa: BLE001 - a hostile __str__ (recursion, raise) is not our problem
        text = "<unprintable message>"
    return text[:300]


# ---------------------------------------------------------------------- the trusted side
class CandidateFailed(BaseException):
    """The candidate cannot answer (timeout, crash, bad reply): the test fails.

    A ``BaseException``, so that a test's ``except Exception`` cannot swallow it.

    Attributes:
        status: ``"timeout"`` or ``"failed"``.
        reason: One line naming the call.
    """

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CandidateProxy:
    """Stands in for the candidate function on the trusted side: each call goes over the channel.

    Args:
        sock: The trusted end of the channel to the candidate process.
        deadline: ``time.monotonic()`` by which the whole check must end.
        limit_s: The total time limit (for messages).
        call_timeout_s: Longest a single call may take.
        max_reply_bytes: Longest reply accepted.
        record: Keep the encoded arguments of every call in :attr:`recorded`.
    """

    def __init__(
        self,
        sock: socket.socket,
        deadline: float,
        limit_s: float,
        call_timeout_s: float,
        max_reply_bytes: int,
        record: bool = False,
    ) -> None:
        self._sock = sock
        self._deadline = deadline
        self._limit_s = limit_s
        self._call_timeout_s = call_timeout_s
        self._max_reply_bytes = max_reply_bytes
        self.calls = 0
        self.failure: CandidateFailed | None = None
        self.raised: BaseException | None = None
        self.raised_reason = ""
        #: Said after the call number in reasons (e.g. which plus input is being run).
        self.context = ""
        self.recorded: list[str] | None = [] if record else None

    def wait_ready(self) -> None:
        """Wait for the candidate's module to load; raise :class:`CandidateFailed` if it did not."""
        reply = self._receive("before call 1")
        if reply == ["ready"]:
            return
        if _shape(reply, "import_error", str, str):
            name, message = _printable(reply[1]), _printable(reply[2])
            raise self._fail("failed", f"candidate code raised {name} when loaded: {message}")
        if _shape(reply, "no_entry_point", str):
            got = _printable(reply[1])
            raise self._fail("failed", f"entry point is not a function (got {got})")
        raise self._fail("failed", "malformed first message from the candidate")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failure is not None:  # a test that caught the failure cannot call on
            raise self.failure
        self.calls += 1
        where = f"in call {self.calls}" + (f" ({self.context})" if self.context else "")
        payload = encode([list(args), kwargs])  # a test passing non-plain data is a test bug
        if self.recorded is not None:
            self.recorded.append(payload.decode("utf-8", "surrogatepass"))
        deadline = min(self._deadline, time.monotonic() + self._call_timeout_s)
        try:
            send_message(self._sock, payload, deadline)
        except (TimeoutError, ChannelClosed) as exc:
            raise self._channel_failure(exc, where) from None
        reply = self._receive(where, deadline)
        if _shape(reply, "returned", object):
            return reply[1]
        if _shape(reply, "raised", str, str):
            name, message = _printable(reply[1]), _printable(reply[2])
            self.raised = _rebuild_exception(name, message)
            self.raised_reason = f"candidate raised {name} {where}: {message}"
            raise self.raised
        if _shape(reply, "not_plain", str):
            what = _printable(reply[1])
            raise self._fail("failed", f"return value is not plain data: {what} ({where})")
        raise self._fail("failed", f"malformed reply {where}")

    def _receive(self, where: str, deadline: float | None = None) -> Any:
        try:
            data = recv_message(self._sock, self._max_reply_bytes, deadline or self._deadline)
        except (TimeoutError, ChannelClosed) as exc:
            raise self._channel_failure(exc, where) from None
        except ReplyTooLarge:
            mib = self._max_reply_bytes / (1 << 20)
            raise self._fail("failed", f"reply {where} is larger than {mib:g} MiB") from None
        try:
            return decode(data)
        except ValueError:
            raise self._fail("failed", f"malformed reply {where}") from None

    def _channel_failure(self, exc: Exception, where: str) -> CandidateFailed:
        if isinstance(exc, TimeoutError):
            whole = time.monotonic() >= self._deadline - 1e-3
            limit = self._limit_s if whole else self._call_timeout_s
            return self._fail("timeout", f"timeout after {limit:g} s {where}")
        return self._fail("failed", f"candidate process ended {where}")

    def _fail(self, status: str, reason: str) -> CandidateFailed:
        self.failure = CandidateFailed(status, reason)
        return self.failure


def _shape(reply: Any, head: str, *types: type) -> bool:
    """True if ``reply`` is ``[head, *values]`` with values of the given types."""
    if type(reply) is not list or len(reply) != 1 + len(types) or reply[0] != head:
        return False
    pairs = zip(reply[1:], types, strict=True)
    return all(kind is object or type(item) is kind for item, kind in pairs)


def _printable(text: str, limit: int = 200) -> str:
    """The candidate's text for a one-line reason: printable characters only, cut."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


def _rebuild_exception(name: str, message: str) -> BaseException:
    """The candidate's exception as the builtin type it derives from (plain ``Exception`` else)."""
    cls = _EXCEPTIONS.get(name, Exception)
    try:
        return cls(message)
    except Exception:  # noqa: BLE001 - types whose constructor wants other arguments
        return Exception(f"{name}: {message}")


# ----------------------------------------------------------------------- the harness
#: Comparisons of a plus input's result with the expected one (see :func:`same`).
COMPARISONS = ("equal", "poly_root")


def same(expected: Any, got: Any) -> bool:
    """Plain-data equality, with floats compared to 1e-6 (relative or absolute), nan == nan.

    Lists, tuples and dicts compare element by element and must be of the same type; any
    other pair compares with ``==`` (so ``1 == 1.0 == True`` as in the base tests).
    """
    numbers = (int, float)
    if type(expected) in numbers and type(got) in numbers and float in (type(expected), type(got)):
        if math.isnan(expected) or math.isnan(got):
            return math.isnan(expected) and math.isnan(got)
        return math.isclose(expected, got, rel_tol=1e-6, abs_tol=1e-6)
    if type(expected) in (list, tuple) and type(got) is type(expected):
        return len(expected) == len(got) and all(map(same, expected, got))
    if type(expected) is dict and type(got) is dict:
        return expected.keys() == got.keys() and all(same(v, got[k]) for k, v in expected.items())
    return expected == got


def grade(spec: dict, sock: socket.socket, started: float) -> dict[str, Any]:
    """Run the check of ``spec`` against the candidate behind ``sock``; return the verdict.

    Args:
        spec: ``entry_point``; ``prompt`` and ``test`` (trusted code: the reference prompt with
            its helpers, and the test code defining ``check``); ``mode``: ``"check"`` (run
            ``check(candidate)`` then the ``plus`` cases), ``"record"`` (the same, keeping every
            call's arguments) or ``"apply"`` (call the candidate on each of ``inputs``, keep
            the results, judge nothing); ``plus``: :func:`encode` text of
            ``[[args, expected], ...]`` or None; ``compare``: one of :data:`COMPARISONS`;
            ``timeout_s``, ``call_timeout_s``, ``max_reply_bytes``.
        sock: The trusted end of the channel.
        started: ``time.monotonic()`` when the run started (the total limit counts from it).

    Returns:
        ``{"status": "passed" | "failed" | "timeout", "reason": str, "calls": int}``, plus
        ``"recorded"`` (record mode) or ``"results"`` (apply mode).
    """
    limit_s = float(spec["timeout_s"])
    proxy = CandidateProxy(
        sock,
        started + limit_s,
        limit_s,
        float(spec.get("call_timeout_s") or limit_s),
        int(spec["max_reply_bytes"]),
        record=spec.get("mode") == "record",
    )
    if spec.get("mode") == "apply":
        return _apply(proxy, decode(spec["inputs"].encode()))
    namespace: dict[str, Any] = {"__name__": "__check__"}
    try:
        exec(compile(spec["prompt"], "<prompt>", "exec"), namespace)
        exec(compile(spec["test"], "<test>", "exec"), namespace)
        namespace[spec["entry_point"]] = proxy  # tests that name the function get the candidate
        random.seed(0)
        proxy.wait_ready()
        namespace["check"](proxy)
        _check_plus(spec, namespace, proxy)
    except BaseException as exc:  # noqa: BLE001 - every way out of the test is a verdict
        return _verdict(proxy, *_why(exc, proxy, spec["test"]))
    if proxy.failure is not None:  # the test caught the failure and carried on
        return _verdict(proxy, proxy.failure.status, proxy.failure.reason)
    return _verdict(proxy, "passed", "ok")


class _WrongResult(AssertionError):
    """A plus input's result differs from the expected one."""


def _check_plus(spec: dict, namespace: dict, proxy: CandidateProxy) -> None:
    if not spec.get("plus"):
        return
    cases = decode(spec["plus"].encode())
    compare = spec.get("compare", "equal")
    for index, (args, expected) in enumerate(cases, 1):
        proxy.context = f"plus input {index} of {len(cases)}"
        got = proxy(*args)
        try:
            if compare == "poly_root":
                good = type(got) in (int, float) and abs(namespace["poly"](args[0], got)) < 1e-4
            else:
                good = same(expected, got)
        except Exception:  # noqa: BLE001 - e.g. an overflow in poly(): not a root
            good = False
        if not good:
            raise _WrongResult(f"wrong result in call {proxy.calls} ({proxy.context})")


def _apply(proxy: CandidateProxy, inputs: list) -> dict[str, Any]:
    """Call the candidate on each input; keep ``["returned", value]`` or ``["raised", type]``."""
    results: list[Any] = []
    try:
        proxy.wait_ready()
        for args in inputs:
            try:
                results.append(["returned", proxy(*args)])
            except CandidateFailed:
                raise
            except BaseException as exc:  # noqa: BLE001 - the canonical solution's error
                results.append(["raised", type(exc).__name__])
    except CandidateFailed as failed:
        verdict = _verdict(proxy, failed.status, failed.reason)
    else:
        verdict = _verdict(proxy, "passed", "ok")
    verdict["results"] = encode(results).decode("utf-8", "surrogatepass")
    return verdict


def _why(exc: BaseException, proxy: CandidateProxy, test: str) -> tuple[str, str]:
    """Status and one-line reason for an exception that ended the check."""
    if isinstance(exc, CandidateFailed):
        return exc.status, exc.reason
    if proxy.failure is not None:  # e.g. the test caught it and then failed otherwise
        return proxy.failure.status, proxy.failure.reason
    if isinstance(exc, _WrongResult):
        return "failed", str(exc)
    if exc is proxy.raised:
        return "failed", proxy.raised_reason
    line = _test_line(exc, test)
    if isinstance(exc, AssertionError):
        return "failed", f"assertion failed in test{line}"
    return "failed", f"test raised {type(exc).__name__}{line}: {str(exc)[:200]}"


def _test_line(exc: BaseException, test: str) -> str:
    """`` line N: <source>`` of the innermost test frame of ``exc``'s traceback, or ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<test>"]
    if not frames or not frames[-1].lineno:
        return ""
    lines = test.splitlines()
    number = frames[-1].lineno
    source = lines[number - 1].strip() if number <= len(lines) else ""
    return f" line {number}: {source[:200]}"


def _verdict(proxy: CandidateProxy, status: str, reason: str) -> dict[str, Any]:
    verdict: dict[str, Any] = {"status": status, "reason": reason[:500], "calls": proxy.calls}
    if proxy.recorded is not None:
        verdict["recorded"] = proxy.recorded
    return verdict


__all__ = [
    "COMPARISONS",
    "CandidateFailed",
    "CandidateProxy",
    "ChannelClosed",
    "MAX_DEPTH",
    "NotPlainData",
    "ReplyTooLarge",
    "decode",
    "encode",
    "grade",
    "recv_message",
    "same",
    "send_message",
    "serve",
    "type_name",
]
