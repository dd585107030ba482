"""The code that runs sandboxed programs (see :mod:`spgg_env.sandbox`); never imported by the host.

The host starts this file as a small **fork server** (``python -I -S _sandbox_child.py``, one per
parallel worker, see :func:`serve`). At start the server imports common modules once and, when
the kernel allows, enters its own namespaces and builds the view every run will see:

1. **Network and IPC**: new network and IPC namespaces (preceded by a user namespace when not
   root): only a loopback that is down, no shared memory with the host. Without namespaces, an
   audit hook refuses internet sockets and native code loading through ``ctypes`` instead.
2. **Read-only view of the file system**: in a private mount namespace every mount is remounted
   read-only. When running as root, directories that the unprivileged user cannot enter but the
   interpreter needs (e.g. ``/root/.pyenv``) are re-exposed read-only under a tmpfs that hides
   everything else in them.

For each run (:func:`run_one`) it forks a child that enters new **mount, PID and UTS**
namespaces. A fork makes PID 1 of the new PID namespace: it mounts a fresh ``/proc`` (only the
run's processes) and a size-limited tmpfs as the working directory, sets the **resource
limits** (CPU seconds, address space, processes, file size, open files, no core dumps),
**drops to an unprivileged uid/gid** with no groups when root, and forks the program (PID 2).
When PID 1 exits, the kernel kills everything left in the namespace, so nothing outlives a run.

The host passes stdout, stderr and a report file as file descriptors with each request. The
report gets JSON lines: ``{"isolation": {...}}`` and, from PID 1, ``{"returncode": n}`` or
``{"signal": n}`` (or ``{"setup_error": "..."}``).
"""

import ctypes
import json
import os
import re
import resource
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
MOUNT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}

LIBC = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = [None if x is None else x.encode() for x in (source, target, fstype, data)]
    _check(LIBC.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def _unshare(flags: int) -> None:
    _check(LIBC.unshare(ctypes.c_int(flags)), "unshare")


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _mountinfo() -> list:
    """(mount point, per-mount flags) of every mount, unescaping octal escapes."""
    mounts = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            flags = 0
            for option in fields[5].split(","):
                flags |= MOUNT_FLAGS.get(option, 0)
            mounts.append((point, flags))
    return mounts


def _blocked_ancestor(path: str, uid: int, gid: int):
    """Topmost directory on ``path`` that ``uid`` cannot enter, or None."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        prefix = os.sep.join(parts[:i])
        info = os.stat(prefix)
        if info.st_uid == uid:
            bit = 0o100
        elif info.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not info.st_mode & bit:
            return prefix
    return None


def _server_view(drop_privileges: bool) -> str:
    """Make this process's (new) mount namespace a read-only view of the host."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    covers, staged = set(), []
    if drop_privileges:
        import tempfile

        staging = tempfile.mkdtemp(prefix="spgg-stage-")
        for i, path in enumerate(p for p in sys.path if os.path.isdir(p)):
            blocker = _blocked_ancestor(path, -1, -1)  # -1: neither owner nor group
            if blocker is not None:
                stage = os.path.join(staging, str(i))
                os.mkdir(stage)
                _mount(path, stage, None, MS_BIND | MS_REC)
                staged.append((stage, path))
                covers.add(blocker)
        for blocker in sorted(covers):
            _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        for stage, path in staged:
            os.makedirs(path, exist_ok=True)
            _mount(stage, path, None, MS_BIND | MS_REC)
            _check(LIBC.umount2(stage.encode(), ctypes.c_int(MNT_DETACH)), f"umount {stage}")
        for stage, _ in staged:
            os.rmdir(stage)
        os.rmdir(staging)
    for point, flags in _mountinfo():
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError:
            if point == "/":
                raise
    shown = ", ".join(sorted(covers)) or "none"
    return f"read-only view; hidden behind tmpfs: {shown}"


def _run_mounts(cfg: dict) -> str:
    """PID 1's mounts: a fresh /proc, and a size-limited tmpfs as the working directory."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    owner = cfg["uid"] if cfg["uid"] is not None else os.geteuid()
    group = cfg["gid"] if cfg["gid"] is not None else os.getegid()
    size = cfg["limits"]["workdir_bytes"]
    options = f"size={size},mode=700,uid={owner},gid={group}"
    _mount("tmpfs", cfg["work"], "tmpfs", MS_NOSUID | MS_NODEV, options)
    os.chdir(cfg["work"])
    return f"writable workdir only (private tmpfs, {size >> 20} MiB)"


def _set_limits(cfg: dict) -> None:
    limits = cfg["limits"]
    pairs = [
        (resource.RLIMIT_CPU, limits["cpu_s"]),
        (resource.RLIMIT_AS, limits["memory_bytes"]),
        (resource.RLIMIT_FSIZE, limits["max_file_bytes"]),
        (resource.RLIMIT_NOFILE, limits["max_open_files"]),
        (resource.RLIMIT_CORE, 0),
    ]
    if cfg["uid"] is not None or os.geteuid() != 0:
        nproc = limits["max_processes"] + cfg["host_processes"]
        pairs.append((resource.RLIMIT_NPROC, nproc))
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


def _drop_privileges(cfg: dict) -> str:
    if cfg["uid"] is None:
        return f"uid {os.geteuid()} (unchanged)"
    os.setgroups([])
    os.setgid(cfg["gid"])
    os.setuid(cfg["uid"])
    return f"uid {cfg['uid']} gid {cfg['gid']} (dropped from root, no groups)"


def _block_sockets() -> None:
    """Fallback without a network namespace: refuse internet sockets and native code."""

    def hook(event, args):
        if event == "socket.__new__" and args[1] in (2, 10):  # AF_INET, AF_INET6
            raise PermissionError("network access is disabled in the sandbox")
        if event in ("socket.connect", "socket.bind", "socket.sendto", "ctypes.dlopen"):
            raise PermissionError(f"{event} is disabled in the sandbox")

    sys.addaudithook(hook)


def _run_program(source: str, path: str) -> None:
    """Run the untrusted program in this process and exit with its status."""
    import traceback

    sys.argv = [path]
    if "random" in sys.modules:  # inherited from the server: reseed for reproducible runs
        sys.modules["random"].seed(0)
    code = 0
    try:
        exec(compile(source, path, "exec"), {"__name__": "__main__", "__file__": path})
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException as exc:  # show the program's frames only, not this launcher's
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)


def _init(report, cfg: dict, isolation: dict) -> None:
    """PID 1 of the run's PID namespace: mount, limit, drop, fork the program, reap, report."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    try:
        isolation["filesystem"] += "; " + _run_mounts(cfg)
        _set_limits(cfg)
        isolation["user"] = _drop_privileges(cfg)
    except OSError as exc:
        report.write(json.dumps({"setup_error": f"{type(exc).__name__}: {exc}"}) + "\n")
        report.flush()
        os._exit(71)
    report.write(json.dumps({"isolation": isolation}) + "\n")
    report.flush()
    child = os.fork()
    if child == 0:
        report.close()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _run_program(cfg["source"], "program.py")
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(70)
        if pid == child:
            break
    if os.WIFSIGNALED(status):
        report.write(json.dumps({"signal": os.WTERMSIG(status)}) + "\n")
    else:
        report.write(json.dumps({"returncode": os.WEXITSTATUS(status)}) + "\n")
    report.flush()
    os._exit(0)


def _enter_server_namespaces(drop_privileges: bool) -> dict:
    """The server's namespaces and read-only view, shared by its (sequential) runs.

    Raises:
        OSError: When the kernel refuses the namespaces (no privileges, user namespaces
            disabled). A failure after that, while building the view, is recorded as
            ``"setup_error"`` instead: this process is then already in new namespaces.
    """
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC
    if os.geteuid() == 0:
        _unshare(flags)
        names = "net, ipc, mount (per server); mount, pid, uts (per run)"
    else:
        uid, gid = os.geteuid(), os.getegid()
        _unshare(CLONE_NEWUSER | flags)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        names = "user, net, ipc, mount (per server); mount, pid, uts (per run)"
    isolation = {
        "namespaces": names,
        "network": "network namespace (no interfaces up)",
        "processes": "pid namespace (all killed when the run ends)",
    }
    try:
        isolation["filesystem"] = _server_view(drop_privileges)
    except OSError as exc:  # half-built view: fail closed, every run reports the error
        isolation["setup_error"] = f"read-only view: {exc}"
    return isolation


def run_one(cfg: dict, fds: list, server_isolation: dict | None) -> None:
    """Run one program in this freshly forked process; exits, never returns."""
    os.setsid()  # its own process group: the server kills the whole group at the end
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in (null, fds[0], fds[1]):
        os.close(fd)
    report = os.fdopen(fds[2], "w")
    with open(cfg["program"], encoding="utf-8", errors="replace") as handle:
        cfg["source"] = handle.read()
    os.chdir(cfg["work"])
    os.environ.clear()
    os.environ.update(cfg["env"])
    # Not root: RLIMIT_NPROC counts every process of our uid, so allow for those already running.
    own = cfg["uid"] is None and os.geteuid() != 0
    cfg["host_processes"] = sum(n.isdigit() for n in os.listdir("/proc")) if own else 0
    if server_isolation is not None:
        isolation = dict(server_isolation)
        try:
            if "setup_error" in isolation:
                raise OSError(isolation["setup_error"])
            _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS)
        except OSError as exc:
            report.write(json.dumps({"setup_error": str(exc)}) + "\n")
            report.flush()
            os._exit(71)
        init = os.fork()
        if init == 0:
            _init(report, cfg, isolation)
        # Asked to stop with SIGTERM: kill PID 1 (the kernel then kills the whole namespace)
        # and reap it, so that no zombie is left to the host's init.
        signal.signal(signal.SIGTERM, lambda *_: os.kill(init, signal.SIGKILL))
        _, status = os.waitpid(init, 0)
        os._exit(os.waitstatus_to_exitcode(status) and 70)
    # Fallback: no namespaces. Harden this process and run the program in it.
    isolation = {
        "namespaces": f"none ({cfg.get('namespaces_unavailable', 'disabled')})",
        "network": "audit-hook socket block (weaker: no network namespace)",
        "processes": "process group (killed when the run ends)",
        "filesystem": "private workdir (no mount namespace: the host's files are reachable)",
    }
    if cfg["uid"] is not None and any(
        _blocked_ancestor(p, cfg["uid"], cfg["gid"]) for p in sys.path if os.path.isdir(p)
    ):
        cfg["uid"] = None
        isolation["user"] = "root (not dropped: the interpreter is unreadable for the sandbox uid)"
    _set_limits(cfg)
    isolation.setdefault("user", _drop_privileges(cfg))
    _block_sockets()
    report.write(json.dumps({"isolation": isolation}) + "\n")
    report.close()
    _run_program(cfg["source"], "program.py")


def _wait(pid: int, timeout_s: float) -> bool:
    """Wait until child ``pid`` exits (not reaping it); False on timeout."""
    if hasattr(os, "pidfd_open"):
        import select

        fd = os.pidfd_open(pid)
        try:
            return bool(select.select([fd], [], [], timeout_s)[0])
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.002)
    return False


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


#: Imported once by the server, so that forked runs do not pay for them (HumanEval's imports).
WARM_MODULES = (
    "bisect",
    "collections",
    "copy",
    "datetime",
    "decimal",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "traceback",
    "typing",
)


def serve(namespaces: bool, drop_privileges: bool) -> None:
    """Fork server: requests arrive on the SEQPACKET socket at fd 0, one per message.

    A request is JSON plus three file descriptors (stdout, stderr, report). For each, fork a
    child that runs :func:`run_one`, wait for it up to the wall-clock timeout, then stop it:
    SIGTERM (the child kills its PID namespace), SIGKILL to its process group after a grace
    second, reap it, and reply ``{"returncode": n, "timed_out": bool}``. Forking this small,
    already-started interpreter saves an interpreter start per run, and the modules of
    :data:`WARM_MODULES` are imported once here.
    """
    import importlib
    import socket

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    server_isolation = None
    fallback_reason = "disabled"
    if namespaces:
        try:
            server_isolation = _enter_server_namespaces(drop_privileges)
        except OSError as exc:
            fallback_reason = str(exc)
    channel = socket.socket(fileno=0)
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 1 << 16, 3)
        if not message:
            return
        cfg = json.loads(message)
        if server_isolation is None:
            cfg["namespaces_unavailable"] = fallback_reason
        pid = os.fork()
        if pid == 0:
            try:
                channel.close()
                run_one(cfg, fds, server_isolation)
            except BaseException as exc:  # the run could not be set up (the program never ran)
                error = json.dumps({"setup_error": f"{type(exc).__name__}: {exc}"})
                try:
                    os.write(fds[2], error.encode() + b"\n")
                except OSError:
                    pass
            finally:
                os._exit(72)
        for fd in fds:
            os.close(fd)
        timed_out = not _wait(pid, cfg["timeout_s"])
        if timed_out:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not _wait(pid, 1.0):
                _kill_group(pid)
        _kill_group(pid)  # whatever is left in its process group (no PID namespace)
        _, status = os.waitpid(pid, 0)
        reply = {"returncode": os.waitstatus_to_exitcode(status), "timed_out": timed_out}
        channel.send(json.dumps(reply).encode())


if __name__ == "__main__":
    serve(namespaces="--no-namespaces" not in sys.argv, drop_privileges="--drop" in sys.argv)
