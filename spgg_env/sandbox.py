"""Run untrusted Python code in a hardened subprocess, and grade it from outside.

Generated code never runs in the host process. Each run happens in a process tree of its own,
forked by a small **fork server** (``python -I -S spgg_env/_sandbox_child.py``, one per parallel
worker, started on demand with a scrubbed environment). The code is hardened before it runs a
line (see :mod:`spgg_env._sandbox_child` for the exact steps):

* **namespaces** when the kernel allows (root, or unprivileged user namespaces): private mount,
  network, PID, IPC and UTS namespaces. The code is PID 2 under a tiny PID 1; when PID 1 ends,
  the kernel kills everything the code left behind, fork bombs included;
* **its own read-only root** holding only the standard library and the system libraries (no
  installed packages, no repository, no other host file), a fresh ``/proc``, and a private
  size-limited tmpfs ``/work`` as the only writable place;
* **no network**: a network namespace with no interface up, or (fallback) an audit hook that
  refuses internet sockets;
* **limits**: wall-clock timeout, CPU seconds, address space, processes, file size (which also
  caps stdout/stderr, written to files), open files, no core dumps;
* **unprivileged user** when running as root: a uid/gid of its own per concurrent run, no
  groups (no capabilities when not root);
* the whole process group is killed with ``SIGKILL`` when the run ends.

Two ways to run code:

* :meth:`Sandbox.run` runs a **program**; its exit status is the result;
* :meth:`Sandbox.check` **grades a function across a process boundary**: the candidate's module
  runs in the sandbox and serves calls of its entry point; the tests run in the run's
  *supervisor*, a process forked from the fork server (pristine builtins, no candidate code ever
  ran in it) outside the candidate's namespaces and uid, which alone writes the verdict. Only
  plain data crosses (:mod:`spgg_env.grading`).

  Why the trusted side is the supervisor and not the host process: it costs no extra process
  (the supervisor already exists to start and reap the run), its interpreter is pristine (the
  host's may be patched by anything the user imported), the HumanEval tests use the global
  ``random`` module (they would consume the host's seeded state), and a test harness stuck on
  a value (a pathological set, a huge number) is ended by the server's wall-clock kill instead
  of hanging a host thread that cannot be killed.

What actually ran is recorded in :attr:`SandboxResult.isolation`; read it, because a kernel
without namespaces gives a weaker sandbox (see ``docs/sandbox.md``).

Example:
    >>> sandbox = Sandbox(Limits(timeout_s=5))
    >>> sandbox.run("print(1 + 1)").stdout
    '2\\n'
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Status = Literal["passed", "failed", "timeout", "error"]

_CHILD = Path(__file__).with_name("_sandbox_child.py")
_HINTS = {
    signal.SIGXCPU: "CPU time limit",
    signal.SIGXFSZ: "file size limit",
    signal.SIGSEGV: "crash, e.g. a stack overflow from deep recursion",
    signal.SIGKILL: "killed",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run.

    Attributes:
        timeout_s: Wall-clock limit in seconds, interpreter start included.
        cpu_s: CPU-time limit in seconds (``RLIMIT_CPU``); default ``ceil(timeout_s) + 1``.
        memory_bytes: Address-space limit (``RLIMIT_AS``).
        max_processes: Processes the sandbox may run at once (``RLIMIT_NPROC``).
        max_file_bytes: Largest file the program may write, stdout and stderr included
            (``RLIMIT_FSIZE``).
        max_open_files: Open file descriptors (``RLIMIT_NOFILE``).
        max_output_bytes: How much of stdout and of stderr is returned.
        workdir_bytes: Size of the working directory (a private tmpfs; namespaces only).
        call_timeout_s: :meth:`Sandbox.check` only: longest one call of the candidate may take
            (default: no limit of its own; the whole check is bounded by ``timeout_s``).
        max_reply_bytes: :meth:`Sandbox.check` only: longest serialised return value accepted.
    """

    timeout_s: float = 10.0
    cpu_s: int | None = None
    memory_bytes: int = 512 << 20
    max_processes: int = 32
    max_file_bytes: int = 16 << 20
    max_open_files: int = 64
    max_output_bytes: int = 64 << 10
    workdir_bytes: int = 64 << 20
    call_timeout_s: float | None = None
    max_reply_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and not value > 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")

    def rlimits(self) -> dict[str, int]:
        """The limits as passed to the child (``cpu_s`` resolved)."""
        cpu = self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1
        return {
            "cpu_s": int(cpu),
            "memory_bytes": int(self.memory_bytes),
            "max_processes": int(self.max_processes),
            "max_file_bytes": int(self.max_file_bytes),
            "max_open_files": int(self.max_open_files),
            "workdir_bytes": int(self.workdir_bytes),
        }


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program.

    Attributes:
        status: ``"passed"`` (exit code 0; for a check: every test passed), ``"failed"``
            (non-zero exit, uncaught exception, killed by a signal or a limit; a failed test),
            ``"timeout"`` (wall clock) or ``"error"`` (the sandbox itself could not run it).
        reason: One line saying why (``"ok"`` when passed).
        returncode: The program's exit code, ``-signal`` when killed, ``None`` if unknown (a
            checked candidate that is still serving when the check ends is killed unrecorded).
        stdout: The start of the program's stdout (capped at ``Limits.max_output_bytes``).
        stderr: The start of its stderr (same cap).
        duration_s: Wall-clock seconds of the whole run, start-up and clean-up included.
        isolation: Which protections actually ran (user, namespaces, network, filesystem,
            processes, limits).
        verdict: For :meth:`Sandbox.check`, the trusted side's verdict
            (:func:`spgg_env.grading.grade`: status, reason, number of calls, and what a
            ``"record"`` or ``"apply"`` check kept); ``None`` for a program.
    """

    status: Status
    reason: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    isolation: Mapping[str, str] = field(default_factory=dict)
    verdict: Mapping[str, Any] | None = None

    @property
    def passed(self) -> bool:
        """True when the program exited with code 0."""
        return self.status == "passed"


class _UidPool:
    """Hands out a distinct unprivileged uid to each concurrent run of this process."""

    def __init__(self, base: int, size: int = 256) -> None:
        self.uids = range(base, base + size)
        self._free = list(reversed(self.uids))
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            while not self._free:
                self._cond.wait()
            return self._free.pop()

    def release(self, uid: int) -> None:
        with self._cond:
            self._free.append(uid)
            self._cond.notify()


# Far above real accounts; distinct per host process so parallel test workers do not share.
_UIDS = _UidPool(base=1_000_000 + (os.getpid() % 4096) * 256)


class Sandbox:
    """Runs untrusted Python programs, one hardened subprocess each.

    Args:
        limits: Resource limits (defaults: :class:`Limits`).
        workers: Parallel runs in :meth:`run_many` (default: the CPU count).
        namespaces: Use Linux namespaces when the kernel allows (recommended).
        drop_privileges: When running as root, run the program as an unprivileged uid.
        site_packages: Let programs import third-party packages (slower start-up).
        tmp_dir: Where run directories (program, stdout, stderr) are created; default
            ``/dev/shm`` when writable (a tmpfs: much faster than a disk), else the system
            temp dir.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        workers: int | None = None,
        namespaces: bool = True,
        drop_privileges: bool = True,
        site_packages: bool = False,
        tmp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self.namespaces = namespaces
        self.drop_privileges = drop_privileges and os.geteuid() == 0
        self.site_packages = site_packages
        self.tmp_dir = os.fspath(tmp_dir) if tmp_dir is not None else _default_tmp_dir()
        self._servers = _ServerPool(site_packages, namespaces, self.drop_privileges)
        weakref.finalize(self, self._servers.close)

    # ------------------------------------------------------------------ public
    def run(self, program: str, *, timeout_s: float | None = None) -> SandboxResult:
        """Run one program as ``__main__``; never raises on any program text.

        Args:
            program: Python source, run in a fresh working directory.
            timeout_s: Wall-clock limit overriding ``limits.timeout_s``.
        """
        return self._run(program, None, self._limits(timeout_s))

    def run_many(
        self, programs: Sequence[str], *, timeout_s: float | None = None
    ) -> list[SandboxResult]:
        """Run several programs on :attr:`workers` parallel workers; results in input order."""
        limits = self._limits(timeout_s)
        return self._map(lambda program: self._run(program, None, limits), programs)

    def check(
        self, source: str, spec: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> SandboxResult:
        """Grade the function ``spec["entry_point"]`` of ``source`` across a process boundary.

        ``source`` (the candidate's module) runs in the sandbox and serves calls; the trusted
        test code of ``spec`` runs in the run's supervisor against a proxy, and its verdict is
        the result (``status``, ``reason``, and the whole ``verdict``). Never raises on any
        source text.

        Args:
            source: The candidate's module (e.g. a HumanEval prompt plus a completion).
            spec: What :func:`spgg_env.grading.grade` runs: ``entry_point``, ``prompt``,
                ``test``, and optionally ``mode``, ``plus``, ``compare``, ``inputs``.
            timeout_s: Limit of the whole check, overriding ``limits.timeout_s``.
        """
        return self._run(source, dict(spec), self._limits(timeout_s))

    def check_many(
        self,
        jobs: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        timeout_s: float | None = None,
    ) -> list[SandboxResult]:
        """:meth:`check` several ``(source, spec)`` pairs in parallel; results in input order."""
        limits = self._limits(timeout_s)
        return self._map(lambda job: self._run(job[0], dict(job[1]), limits), jobs)

    def describe(self) -> dict[str, object]:
        """Configuration and the isolation a trivial program actually got on this host."""
        probe = self.run("pass")
        return {
            "limits": self.limits.rlimits() | {"timeout_s": self.limits.timeout_s},
            "workers": self.workers,
            "probe_status": probe.status,
            "isolation": dict(probe.isolation),
        }

    def close(self) -> None:
        """Stop this sandbox's fork servers (they are restarted on the next run)."""
        self._servers.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- private
    def _limits(self, timeout_s: float | None) -> Limits:
        return self.limits if timeout_s is None else replace(self.limits, timeout_s=timeout_s)

    def _map(self, one, items: Sequence) -> list[SandboxResult]:
        if len(items) <= 1 or self.workers == 1:
            return [one(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(one, items))

    def _run(self, source: str, spec: dict | None, limits: Limits) -> SandboxResult:
        start = time.perf_counter()
        uid = _UIDS.acquire() if self.drop_privileges else None
        run_dir = tempfile.mkdtemp(prefix="spgg-sbx-", dir=self.tmp_dir)
        try:
            result = self._run_in(Path(run_dir), source, spec, limits, uid)
        except OSError as exc:
            result = _error(f"sandbox could not start: {exc}")
        finally:
            _rmtree(run_dir)
            if uid is not None:
                _UIDS.release(uid)
        return replace(result, duration_s=time.perf_counter() - start)

    def _run_in(
        self, run_dir: Path, source: str, spec: dict | None, limits: Limits, uid: int | None
    ) -> SandboxResult:
        work = run_dir / "work"  # the working directory of the fallback without namespaces
        work.mkdir()
        if uid is not None:
            os.chown(work, uid, uid)
        request = {
            "mode": "program" if spec is None else "check",
            "entry_point": None if spec is None else spec["entry_point"],
            "work": str(work),
            "env": _clean_env(),
            "uid": uid,
            "gid": uid,
            "limits": limits.rlimits(),
            "timeout_s": limits.timeout_s,
            # A check ends itself at timeout_s; the server's kill is the backstop.
            "server_timeout_s": limits.timeout_s + (0.0 if spec is None else 2.0),
        }
        blobs = [source]
        if spec is not None:
            spec |= {
                "timeout_s": limits.timeout_s,
                "call_timeout_s": limits.call_timeout_s,
                "max_reply_bytes": limits.max_reply_bytes,
            }
            blobs.append(json.dumps(spec))
        with (
            open(run_dir / "stdout", "wb+") as out,
            open(run_dir / "stderr", "wb+") as err,
            open(run_dir / "report", "wb+") as report,
        ):
            memfds = [_memfd(text) for text in blobs]
            try:
                files = [out.fileno(), err.fileno(), report.fileno(), *memfds]
                reply = self._servers.request(request, files, request["server_timeout_s"] + 30.0)
            finally:
                for fd in memfds:
                    os.close(fd)
            if reply is None:
                return _error("sandbox server died or hung; it was restarted")
            records = _read_report(report)
            if uid is not None and not _in_pid_namespace(records):
                _kill_uid(uid)  # no PID namespace: sweep processes that left the group
            stdout = _read_capped(out, limits.max_output_bytes)
            stderr = _read_capped(err, limits.max_output_bytes)
            last_line = _last_line(err)
        isolation = dict(records["isolation"]) | {"limits": _describe_limits(limits)}
        verdict = records.get("verdict")
        code = _exit_code(records)
        if reply["timed_out"]:
            status, reason = "timeout", f"wall-clock timeout after {limits.timeout_s:g} s"
            if spec is not None:
                reason += " (the check did not finish)"
        elif "setup_error" in records:
            status, reason = "error", f"sandbox setup failed: {records['setup_error']}"
        elif spec is not None:
            status, reason = _check_outcome(verdict, reply["returncode"])
        else:
            status, reason, code = _outcome(records, reply["returncode"], last_line)
        return SandboxResult(status, reason, code, stdout, stderr, 0.0, isolation, verdict)


class _Server:
    """One fork server process and the socket to it."""

    def __init__(self, args: list[str]) -> None:
        self.channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.process = subprocess.Popen(
                args,
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_clean_env(),
                cwd="/",
                start_new_session=True,
            )

    def request(self, request: dict, fds: list[int], guard_s: float) -> dict | None:
        """Send one run with its file descriptors; wait for the reply (None if the server died)."""
        try:
            socket.send_fds(self.channel, [json.dumps(request).encode()], fds)
            ready, _, _ = select.select([self.channel], [], [], guard_s)
            message = self.channel.recv(1 << 16) if ready else b""
            return json.loads(message) if message else None
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        self.channel.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()


class _ServerPool:
    """Idle fork servers (``_sandbox_child.py``), one per concurrent run, started on demand."""

    def __init__(self, site_packages: bool, namespaces: bool, drop_privileges: bool) -> None:
        flags = ["-I"] if site_packages else ["-I", "-S"]
        options = (
            ([] if namespaces else ["--no-namespaces"])
            + (["--drop"] if drop_privileges else [])
            + (["--site-packages"] if site_packages else [])
        )
        self._args = [sys.executable, *flags, str(_CHILD), *options]
        self._idle: list[_Server] = []
        self._all: list[_Server] = []
        self._lock = threading.Lock()

    def request(self, request: dict, fds: list[int], guard_s: float) -> dict | None:
        """Run a request on an idle server (started if none is idle)."""
        server = self._acquire()
        reply = server.request(request, fds, guard_s)
        with self._lock:
            if reply is not None:
                self._idle.append(server)
            elif server in self._all:
                self._all.remove(server)
        if reply is None:
            server.stop()
        return reply

    def _acquire(self) -> _Server:
        """An idle live server, or a new one (servers that died while idle are dropped)."""
        while True:
            with self._lock:
                server = self._idle.pop() if self._idle else None
                if server is not None and server.process.poll() is not None:
                    self._all.remove(server)
                    dead, server = server, None
                else:
                    dead = None
            if dead is not None:
                dead.stop()
                continue
            if server is None:
                server = _Server(self._args)
                with self._lock:
                    self._all.append(server)
            return server

    def close(self) -> None:
        with self._lock:
            servers, self._all, self._idle = self._all, [], []
        for server in servers:
            server.stop()


# ---------------------------------------------------------------------- helpers
def _clean_env() -> dict[str, str]:
    """The whole environment the child sees: nothing of the host's (it adds HOME and TMPDIR)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _default_tmp_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` (used only without a PID namespace)."""
    for _ in range(10):
        found = False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    os.kill(int(name), signal.SIGKILL)
                    found = True
            except OSError:
                continue
        if not found:
            return
        time.sleep(0.01)


def _read_report(handle) -> dict:
    handle.seek(0)
    records: dict = {"isolation": {}}
    for line in handle.read().decode("utf-8", errors="replace").splitlines():
        try:
            records.update(json.loads(line))
        except ValueError:
            continue
    return records


def _read_capped(handle, cap: int) -> str:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    text = handle.read(cap).decode("utf-8", errors="replace")
    if size > cap:
        text += f"\n[... {size - cap} more bytes not shown]"
    return text


def _last_line(handle, tail: int = 4096) -> str:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - tail))
    lines = handle.read().decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1].strip()[:300] if lines else ""


def _in_pid_namespace(records: dict) -> bool:
    return "pid namespace" in records["isolation"].get("processes", "")


def _signal_reason(number: int) -> str:
    try:
        sig = signal.Signals(number)
    except ValueError:
        return f"killed by signal {number}"
    hint = _HINTS.get(sig)
    return f"killed by {sig.name}" + (f" ({hint})" if hint else "")


def _memfd(text: str) -> int:
    """An anonymous in-memory file holding ``text`` (no path anyone could open)."""
    fd = os.memfd_create("spgg-sandbox", os.MFD_CLOEXEC)
    data = text.encode("utf-8", errors="surrogatepass")
    while data:
        data = data[os.write(fd, data) :]
    return fd


def _exit_code(records: dict) -> int | None:
    if "signal" in records:
        return -records["signal"]
    return records.get("returncode")


def _check_outcome(verdict: Mapping | None, returncode: int) -> tuple[Status, str]:
    """Status and reason of a check: the trusted side's verdict, or why there is none."""
    if verdict is None:  # e.g. killed by a candidate that shares its uid (fallback only)
        return "failed", f"the check ended without a verdict (grader exit code {returncode})"
    return verdict["status"], verdict["reason"]


def _outcome(records: dict, returncode: int, last_line: str) -> tuple[Status, str, int | None]:
    if "signal" in records:
        return "failed", _signal_reason(records["signal"]), -records["signal"]
    if "returncode" not in records:
        if _in_pid_namespace(records):
            return "failed", f"sandbox init ended early (code {returncode})", returncode
        if returncode < 0:
            return "failed", _signal_reason(-returncode), returncode
        records = {"returncode": returncode}
    code = records["returncode"]
    if code == 0:
        return "passed", "ok", 0
    reason = last_line or f"exit code {code}"
    if "File too large" in reason:
        reason += " (file size limit; too much output?)"
    elif reason.startswith("MemoryError"):
        reason += " (memory limit)"
    return "failed", reason, code


def _describe_limits(limits: Limits) -> str:
    r = limits.rlimits()
    return (
        f"wall {limits.timeout_s:g} s, cpu {r['cpu_s']} s, as {r['memory_bytes'] >> 20} MiB, "
        f"nproc {r['max_processes']}, fsize {r['max_file_bytes'] >> 20} MiB, "
        f"nofile {r['max_open_files']}"
    )


def _error(reason: str) -> SandboxResult:
    return SandboxResult("error", reason, None, "", "", 0.0, {})


def _rmtree(path: str) -> None:
    """Remove a run directory even if the program made parts of it unreadable."""

    def fix(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


__all__ = ["Limits", "Sandbox", "SandboxResult", "Status"]
