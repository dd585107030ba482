"""The first code that runs in a sandboxed subprocess (see :mod:`spgg_env.sandbox`).

The host starts this file as a small fork server (``python -I -S _sandbox_child.py``, see
:func:`serve`); it is never imported by the host. For each run the server forks a child that
hardens its own process, then runs the untrusted program (:func:`run_one`):

1. **Namespaces** (when the kernel allows): ``unshare`` new mount, network, PID, IPC and UTS
   namespaces (preceded by a user namespace when not root). A fork makes the child PID 1 of the
   new PID namespace; when PID 1 exits the kernel kills everything left in it, so no process
   outlives the run. The program itself runs as PID 2.
2. **Read-only view of the file system**: every mount is remounted read-only in the private mount
   namespace; the program's working directory is a fresh size-limited tmpfs. A fresh ``/proc``
   shows only the sandbox's processes. When running as root, directories that the unprivileged
   user cannot enter but the interpreter needs (e.g. ``/root/.pyenv``) are re-exposed
   read-only under a tmpfs that hides everything else in them.
3. **Network**: the new network namespace has only a down loopback. Without namespaces, an audit
   hook refuses to create internet sockets and to load native code through ``ctypes``.
4. **Resource limits** (``setrlimit``): CPU seconds, address space, processes, file size, open
   files, no core dumps.
5. **Unprivileged user**: as root, drop to a sandbox uid/gid with no supplementary groups.

Progress is reported as JSON lines in the run's report file (closed before the program
starts): ``{"isolation": {...}}`` and, from PID 1, ``{"returncode": n}`` or ``{"signal": n}``.
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


def _readonly_view(cfg: dict, staging: str) -> str:
    """Build the mount namespace's view (runs as root of the new namespaces)."""
    work = os.getcwd()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    needed = [p for p in sys.path if os.path.isdir(p)]
    covers, staged = set(), []
    if cfg["uid"] is not None:
        for i, path in enumerate(needed):
            blocker = _blocked_ancestor(path, cfg["uid"], cfg["gid"])
            if blocker is not None:
                stage = os.path.join(staging, f"s{i}")
                os.mkdir(stage)
                _mount(path, stage, None, MS_BIND | MS_REC)
                staged.append((stage, path))
                covers.add(blocker)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # The program's working directory: a fresh tmpfs of limited size, gone with the namespace.
    owner = cfg["uid"] if cfg["uid"] is not None else os.geteuid()
    group = cfg["gid"] if cfg["gid"] is not None else os.getegid()
    size = cfg["limits"]["workdir_bytes"]
    _mount(
        "tmpfs",
        work,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={size},mode=700,uid={owner},gid={group}",
    )
    for blocker in sorted(covers):
        _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
    for stage, path in staged:
        os.makedirs(path, exist_ok=True)
        _mount(stage, path, None, MS_BIND | MS_REC)
    for point, flags in _mountinfo():
        if point == work:
            continue
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError:
            if point == "/":
                raise
    os.chdir(work)
    shown = ", ".join(sorted(covers)) or "none"
    return f"read-only view, writable workdir only (tmpfs {size >> 20} MiB); hidden: {shown}"


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
    """PID 1 of the sandbox's PID namespace: fork the program, reap, report, exit."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    try:
        isolation["filesystem"] = _readonly_view(cfg, cfg["staging"])
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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _run_program(cfg["source"], cfg["program"])
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


def _enter_namespaces() -> str:
    """Unshare the namespaces; returns how (raises OSError when the kernel refuses)."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if os.geteuid() == 0:
        _unshare(flags)
        return "mount, net, pid, ipc, uts"
    uid, gid = os.geteuid(), os.getegid()
    _unshare(CLONE_NEWUSER | flags)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    return "user, mount, net, pid, ipc, uts"


def run_one(cfg: dict) -> None:
    """Set up one run's process (files, cwd, environment), harden it, run the program; exits."""
    os.setsid()  # its own process group: the server kills the whole group at the end
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, cfg["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, cfg["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(cfg["work"])
    os.environ.clear()
    os.environ.update(cfg["env"])
    # Not root: RLIMIT_NPROC counts every process of our uid, so allow for those already running.
    own = cfg["uid"] is None and os.geteuid() != 0
    cfg["host_processes"] = sum(n.isdigit() for n in os.listdir("/proc")) if own else 0
    report = open(cfg["report"], "w")
    # Read the program, then remove it: the program cannot read its own (e.g. the test code).
    with open(cfg["program"], encoding="utf-8", errors="replace") as handle:
        cfg["source"] = handle.read()
    os.unlink(cfg["program"])
    isolation = {}
    if cfg["namespaces"]:
        try:
            isolation["namespaces"] = _enter_namespaces()
        except OSError as exc:
            isolation["namespaces"] = f"none ({exc})"
    else:
        isolation["namespaces"] = "none (disabled)"
    if not isolation["namespaces"].startswith("none"):
        isolation["network"] = "network namespace (no interfaces up)"
        isolation["processes"] = "pid namespace (all killed when the run ends)"
        init = os.fork()
        if init == 0:
            _init(report, cfg, isolation)
        # Asked to stop with SIGTERM: kill PID 1 (the kernel then kills the whole namespace)
        # and reap it, so that no zombie is left to the host's init.
        signal.signal(signal.SIGTERM, lambda *_: os.kill(init, signal.SIGKILL))
        _, status = os.waitpid(init, 0)
        os._exit(os.waitstatus_to_exitcode(status) and 70)
    # Fallback: no namespaces. Harden this process and run the program in it.
    isolation["network"] = "audit-hook socket block (weaker: no network namespace)"
    isolation["processes"] = "process group (killed when the run ends)"
    isolation["filesystem"] = "private workdir only (no mount namespace)"
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
    _run_program(cfg["source"], cfg["program"])


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


def serve() -> None:
    """Fork server: one JSON request per line on stdin, one JSON reply per line on stdout.

    For each request, fork a child that runs :func:`run_one`, wait for it up to the wall-clock
    timeout, then stop it: SIGTERM (the child kills its PID namespace), SIGKILL to its process
    group after a grace second, reap it, and reply ``{"returncode": n, "timed_out": bool}``.
    Forking this small, already-started interpreter saves an interpreter start per run, and
    the modules of :data:`WARM_MODULES` are imported once here.
    """
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        cfg = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                run_one(cfg)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(72)
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
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
