"""The code that runs sandboxed programs (see :mod:`spgg_env.sandbox`); never imported by the host.

The host starts this file as a small **fork server** (``python -I -S _sandbox_child.py``, one per
parallel worker, see :func:`serve`). At start the server imports common modules and the grading
protocol (:mod:`spgg_env.grading`, loaded by path) once and, when the kernel allows, enters its
own namespaces and builds the root every run will see:

1. **Network and IPC**: new network and IPC namespaces (preceded by a user namespace when not
   root): only a loopback that is down, no shared memory with the host. Without namespaces, an
   audit hook refuses internet sockets and native code loading through ``ctypes`` instead.
2. **A root of its own** (:func:`_server_view`): a read-only tmpfs into which only what the
   interpreter needs is bound, read-only: its standard library (``sys.path``), the system
   library directories and ``ld.so.cache``, ``/dev/null``, ``/dev/zero``, ``/dev/(u)random``,
   time-zone data. Every ``site-packages`` / ``dist-packages`` directory in them is covered by an
   empty tmpfs, so installed packages (the HumanEval data, this package's test data), the
   repository and every other host file are out of sight. The server then ``pivot_root``\\ s
   into it and detaches the host's root.

Each request (:func:`run_one`) forks a **supervisor**, which starts the untrusted program and
stays outside its reach. It enters new **mount, PID and UTS** namespaces and forks **PID 1**,
which mounts a fresh ``/proc`` (only the run's processes) and a size-limited tmpfs at ``/work``
(the working directory), closes every file descriptor it does not need, sets the **resource
limits** (CPU seconds, address space, processes, file size, open files, no core dumps), **drops
to an unprivileged uid/gid** with no groups when root (all capabilities when not root), and
forks the program (PID 2). When PID 1 exits, the kernel kills everything left in the namespace.

Two kinds of request:

* ``"program"``: the program runs as ``__main__``; the supervisor waits for it and reports how
  it ended;
* ``"check"``: the program is a candidate module; PID 2 serves calls of its entry point over a
  socket pair (:func:`spgg_env.grading.serve`) while the supervisor, which never ran a line of
  untrusted code, runs the trusted tests against a proxy (:func:`spgg_env.grading.grade`) and
  alone writes the verdict. The tests reach the supervisor through a file descriptor it reads
  only after the candidate's process tree has been forked and has closed it.

The host passes stdout, stderr, a report file, the program (and the check's spec) as file
descriptors with each request. Only the supervisor writes the report, as JSON lines:
``{"isolation": {...}}``, ``{"returncode": n}`` or ``{"signal": n}`` of the program,
``{"setup_error": "..."}``, and ``{"verdict": {...}}`` for a check.
"""

import ctypes
import glob
import json
import os
import re
import resource
import signal
import socket
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
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

#: Directories the dynamic loader searches; bound read-only into the sandbox's root.
LIBRARY_DIRS = (
    "/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local/lib"
)
#: Files and data the interpreter or the standard library may open.
SYSTEM_PATHS = (
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
)
#: Where installed packages live inside the bound directories; covered by an empty tmpfs.
PACKAGE_GLOBS = ("site-packages", "dist-packages", "python*/site-packages", "python*/dist-packages")
#: The run's writable working directory inside the sandbox's root.
WORKDIR = "/work"

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


def _prctl(option: int, value: int) -> None:
    _check(LIBC.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


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


def _flags_of(path: str, mounts: list) -> int:
    """The per-mount flags of the mount holding ``path`` (a remount must keep locked ones)."""
    best, flags = -1, 0
    for point, point_flags in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, flags = len(point), point_flags
    return flags


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


def _bind_into(root: str, path: str, mounts: list) -> str | None:
    """Bind host ``path`` read-only at the same place under ``root``; return its real path.

    Symbolic links on the way (``/lib -> usr/lib``) are recreated under ``root`` and the real
    path is bound. A path that does not exist is skipped (None).
    """
    if not os.path.exists(path):
        return None
    current = ""
    for part in path.strip("/").split("/"):
        current += "/" + part
        if os.path.islink(current):
            link = root + current
            if not os.path.lexists(link):
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.readlink(current), link)
            return _bind_into(root, os.path.realpath(path), mounts)
    target = root + path
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "w").close()
    _mount(path, target, None, MS_BIND)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _flags_of(path, mounts))
    return path


def _pivot_into(root: str) -> None:
    """Make ``root`` this mount namespace's root and detach the old one."""
    old = os.path.join(root, ".old-root")
    os.mkdir(old)
    if hasattr(LIBC, "pivot_root"):
        _check(LIBC.pivot_root(root.encode(), old.encode()), "pivot_root")
        os.chdir("/")
        _check(LIBC.umount2(b"/.old-root", ctypes.c_int(MNT_DETACH)), "umount old root")
        os.rmdir("/.old-root")
    else:  # a libc without the wrapper: chroot (the program gets no capability to leave it)
        os.rmdir(old)
        os.chroot(root)
        os.chdir("/")


def _server_view(site_packages: bool) -> str:
    """Make this process's (new) mount namespace's root hold only what the interpreter needs."""
    mounts = _mountinfo()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = "/tmp" if os.path.isdir("/tmp") else "/mnt"
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    kept = [p for p in sys.path if os.path.isdir(p)] + list(LIBRARY_DIRS)
    bound = []
    for path in sorted(kept + list(SYSTEM_PATHS), key=len):  # parents before children
        real = _bind_into(root, path, mounts)
        if real is not None and os.path.isdir(real):
            bound.append(real)
    hidden = set()
    allowed = set(sys.path) if site_packages else set()
    for directory in bound:
        for pattern in PACKAGE_GLOBS:
            for found in glob.glob(os.path.join(root + directory, pattern)):
                host_path = found[len(root) :]
                if os.path.isdir(found) and host_path not in allowed | hidden:
                    _mount("tmpfs", found, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k")
                    hidden.add(host_path)
    for directory in ("proc", WORKDIR.strip("/")):
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    _pivot_into(root)
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    packages = "site-packages on sys.path visible" if site_packages else "no installed packages"
    return (
        "own read-only root: standard library and system libraries only "
        f"({packages}; {len(hidden)} package directories hidden)"
    )


def _run_mounts(cfg: dict) -> str:
    """PID 1's mounts: a fresh /proc, and a size-limited tmpfs as the working directory."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    owner = cfg["uid"] if cfg["uid"] is not None else os.geteuid()
    group = cfg["gid"] if cfg["gid"] is not None else os.getegid()
    size = cfg["limits"]["workdir_bytes"]
    options = f"size={size},mode=700,uid={owner},gid={group}"
    _mount("tmpfs", WORKDIR, "tmpfs", MS_NOSUID | MS_NODEV, options)
    os.chdir(WORKDIR)
    return f"writable workdir {WORKDIR} only (private tmpfs, {size >> 20} MiB)"


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
    """Become the run's unprivileged uid (root), or shed every capability (not root)."""
    if cfg["uid"] is None:
        _drop_capabilities()
        return f"uid {os.geteuid()} (unchanged, no capabilities)"
    os.setgroups([])
    os.setgid(cfg["gid"])
    os.setuid(cfg["uid"])
    return f"uid {cfg['uid']} gid {cfg['gid']} (dropped from root, no groups)"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


def _drop_capabilities() -> None:
    """Empty this process's capability sets (those a user namespace gave it) for good."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    _check(LIBC.capset(ctypes.byref(header), (_CapData * 2)()), "capset")


def _block_sockets() -> None:
    """Fallback without a network namespace: refuse internet sockets and native code."""

    def hook(event, args):
        if event == "socket.__new__" and args[1] in (2, 10):  # AF_INET, AF_INET6
            raise PermissionError("network access is disabled in the sandbox")
        if event in ("socket.connect", "socket.bind", "socket.sendto", "ctypes.dlopen"):
            raise PermissionError(f"{event} is disabled in the sandbox")

    sys.addaudithook(hook)


def _keep_only(fds: list) -> None:
    """Close every file descriptor above 2 except ``fds``."""
    low = 3
    for fd in sorted(set(fds)):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _run_candidate(cfg: dict, source: str, channel) -> None:
    """Run the untrusted code in this process and exit: a program, or a served candidate."""
    sys.argv = ["program.py"]
    _prctl(PR_SET_DUMPABLE, 1)  # its own memory and /proc/self are its own to read
    if "random" in sys.modules:  # inherited from the server: reseed for reproducible runs
        sys.modules["random"].seed(0)
    code = 0
    if channel is not None:
        try:
            GRADING.serve(socket.socket(fileno=channel), source, cfg["entry_point"], "program.py")
        except BaseException:  # noqa: BLE001 - the grader sees the channel close
            code = 1
    else:
        code = _run_program(source, "program.py")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(code)


def _run_program(source: str, path: str) -> int:
    """Run a whole program as ``__main__``; return its exit status."""
    import traceback

    try:
        exec(compile(source, path, "exec"), {"__name__": "__main__", "__file__": path})
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException as exc:  # show the program's frames only, not this launcher's
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        return 1
    return 0


def _init(cfg: dict, source: str, channel, status_fd: int, isolation: dict) -> None:
    """PID 1 of the run's PID namespace: mount, limit, drop, fork the program, reap, report."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    _keep_only([fd for fd in (channel, status_fd) if fd is not None])
    status = os.fdopen(status_fd, "w")
    try:
        _prctl(PR_SET_DUMPABLE, 0)
        isolation["filesystem"] += "; " + _run_mounts(cfg)
        _set_limits(cfg)
        isolation["user"] = _drop_privileges(cfg)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as exc:
        status.write(json.dumps({"setup_error": f"{type(exc).__name__}: {exc}"}) + "\n")
        status.flush()
        os._exit(71)
    status.write(json.dumps({"isolation": isolation}) + "\n")
    status.flush()
    child = os.fork()
    if child == 0:
        status.close()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _run_candidate(cfg, source, channel)
    if channel is not None:  # only the program holds it: its closing is the supervisor's EOF
        os.close(channel)
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(70)
        if pid == child:
            break
    status.write(json.dumps(_exit_record(wait_status)) + "\n")
    status.flush()
    os._exit(0)


def _exit_record(wait_status: int) -> dict:
    if os.WIFSIGNALED(wait_status):
        return {"signal": os.WTERMSIG(wait_status)}
    return {"returncode": os.WEXITSTATUS(wait_status)}


def _enter_server_namespaces(site_packages: bool) -> dict:
    """The server's namespaces and root, shared by its (sequential) runs.

    Raises:
        OSError: When the kernel refuses the namespaces (no privileges, user namespaces
            disabled). A failure after that, while building the root, is recorded as
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
        isolation["filesystem"] = _server_view(site_packages)
    except OSError as exc:  # half-built root: fail closed, every run reports the error
        isolation["setup_error"] = f"sandbox root: {exc}"
    return isolation


def _read_fd(fd: int) -> str:
    """The whole content of a file (from its start) or of a pipe; closes ``fd``."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:  # a pipe
        pass
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace")


class _Run:
    """One request, seen from its supervisor (the process :func:`serve` forks for it)."""

    def __init__(self, cfg: dict, fds: list, server_isolation: dict | None) -> None:
        self.cfg = cfg
        self.report = os.fdopen(fds[2], "w")
        self.source = _read_fd(fds[3])
        self.spec_fd = fds[4] if len(fds) > 4 else None
        self.server_isolation = server_isolation
        self.records: dict = {}
        self.top = 0  # the pid at the top of the program's process tree
        self.status_fd = None
        null = os.open(os.devnull, os.O_RDONLY)  # fd 0 when the server's channel was fd 0
        for source, target in ((null, 0), (fds[0], 1), (fds[1], 2)):
            if source != target:
                os.dup2(source, target)
                os.close(source)

    def start(self, channel) -> None:
        """Fork the program's process tree (PID 1 and the program, or the hardened program)."""
        cfg = self.cfg
        workdir = WORKDIR if self.server_isolation is not None else cfg["work"]
        os.environ.clear()
        os.environ.update(cfg["env"] | {"HOME": workdir, "TMPDIR": workdir})
        # Not root: RLIMIT_NPROC counts every process of our uid; allow for those already running.
        own = cfg["uid"] is None and os.geteuid() != 0
        cfg["host_processes"] = sum(n.isdigit() for n in os.listdir(PROC_FD)) if own else 0
        if self.server_isolation is not None:
            isolation = dict(self.server_isolation)
            if "setup_error" in isolation:
                raise OSError(isolation["setup_error"])
            _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS)
            status_r, status_w = os.pipe()
            self.top = os.fork()
            if self.top == 0:
                os.close(status_r)
                _init(cfg, self.source, channel, status_w, isolation)
            os.close(status_w)
            self.status_fd = status_r
        else:
            self.top = os.fork()
            if self.top == 0:
                self._harden_and_run(channel)
        signal.signal(signal.SIGTERM, lambda *_: (self.stop(), self.finish()))

    def _harden_and_run(self, channel) -> None:
        """Fallback without namespaces: harden this process and run the program in it."""
        cfg = self.cfg
        _keep_only([channel] if channel is not None else [])
        os.chdir(cfg["work"])
        _set_limits(cfg)
        if cfg["uid"] is not None:
            _drop_privileges(cfg)
        _block_sockets()
        _run_candidate(cfg, self.source, channel)

    def fallback_isolation(self) -> dict:
        """What the fallback gives (decided before the fork, so the supervisor knows it)."""
        cfg = self.cfg
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
            isolation["user"] = "root (not dropped: the sandbox uid cannot read the interpreter)"
        elif cfg["uid"] is not None:
            isolation["user"] = f"uid {cfg['uid']} gid {cfg['gid']} (dropped from root, no groups)"
        else:
            isolation["user"] = f"uid {os.geteuid()} (unchanged)"
        return isolation

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the program's tree to end by itself; False if it is still running."""
        if not self.top:
            return True
        if timeout_s is not None and not _wait(self.top, timeout_s):
            return False
        _, wait_status = os.waitpid(self.top, 0)
        self.top = 0
        if self.status_fd is None:
            self.records.update(_exit_record(wait_status))
            return True
        for line in _read_fd(self.status_fd).splitlines():  # PID 1's records, now complete
            try:
                self.records.update(json.loads(line))
            except ValueError:
                continue
        self.status_fd = None
        return True

    def stop(self) -> None:
        """Kill the program's tree (PID 1 takes its namespace with it) and reap it."""
        if self.top:
            try:
                os.kill(self.top, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()

    def finish(self, verdict: dict | None = None) -> None:
        """Write the report and exit (after :meth:`stop` or :meth:`wait`)."""
        if verdict is not None:
            self.records["verdict"] = verdict
        self.report.write(json.dumps(self.records) + "\n")
        self.report.flush()
        os._exit(0)


def run_one(cfg: dict, fds: list, server_isolation: dict | None) -> None:
    """Supervise one request in this freshly forked process; exits, never returns."""
    os.setsid()  # its own process group: the server kills the whole group at the end
    _prctl(PR_SET_DUMPABLE, 0)  # no same-uid process may read its memory or file descriptors
    started = time.monotonic()
    run = _Run(cfg, fds, server_isolation)
    if server_isolation is None:
        run.records["isolation"] = run.fallback_isolation()
    trusted = untrusted = None
    if cfg["mode"] == "check":
        trusted, untrusted = socket.socketpair()
    try:
        run.start(untrusted.fileno() if untrusted is not None else None)
    except OSError as exc:
        run.records["setup_error"] = str(exc)
        run.stop()
        run.finish()
    if untrusted is None:
        run.wait()
        run.finish()
    untrusted.close()
    null = os.open(os.devnull, os.O_WRONLY)  # the trusted tests print nowhere
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    spec = json.loads(_read_fd(run.spec_fd))  # read only now: the candidate's tree has no copy
    verdict = GRADING.grade(spec, trusted, started)
    if "candidate process ended" in verdict["reason"]:  # or it closed its end of the channel
        if run.wait(1.0):
            verdict["reason"] += _how_it_ended(run.records)
        else:
            verdict["reason"] = verdict["reason"].replace("ended", "closed its channel")
    run.stop()
    run.finish(verdict)


def _how_it_ended(records: dict) -> str:
    """`` (exit code 0: ...)`` or `` (killed by SIGSEGV)`` for a candidate that died in a call."""
    if "signal" in records:
        try:
            name = signal.Signals(records["signal"]).name
        except ValueError:
            name = str(records["signal"])
        return f" (killed by {name})"
    if "returncode" in records:
        code = records["returncode"]
        return f" (exit code {code}{': sys.exit / os._exit?' if code == 0 else ''})"
    return ""


def _wait(pid: int, timeout_s: float) -> bool:
    """Wait until child ``pid`` exits (not reaping it); False on timeout."""
    if hasattr(os, "pidfd_open"):
        import select

        fd = os.pidfd_open(pid)
        try:
            return bool(select.select([fd], [], [], max(0.0, timeout_s))[0])
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
    "select",
    "statistics",
    "string",
    "traceback",
    "typing",
)

#: The grading protocol (``grading.py`` beside this file), loaded by :func:`serve`.
GRADING = None
#: The host's ``/proc``, opened before the server's root replaces it (to count processes).
PROC_FD = None


def _load_grading():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grading.py")
    spec = importlib.util.spec_from_file_location("spgg_grading", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def serve(namespaces: bool, drop_privileges: bool, site_packages: bool) -> None:
    """Fork server: requests arrive on the SEQPACKET socket at fd 0, one per message.

    A request is JSON plus its file descriptors (stdout, stderr, report, program, and a check's
    spec). For each, fork a supervisor that runs :func:`run_one`, wait for it up to the
    request's ``server_timeout_s``, then stop it: SIGTERM (it kills the program's tree),
    SIGKILL to its process group after a grace second, reap it, and reply
    ``{"returncode": n, "timed_out": bool}``. Forking this small, already-started interpreter
    saves an interpreter start per run, and :data:`WARM_MODULES` are imported once here.
    """
    global GRADING, PROC_FD
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    GRADING = _load_grading()
    PROC_FD = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    _prctl(PR_SET_DUMPABLE, 0)
    server_isolation = None
    fallback_reason = "disabled"
    if namespaces:
        try:
            server_isolation = _enter_server_namespaces(site_packages)
        except OSError as exc:
            fallback_reason = str(exc)
    channel = socket.socket(fileno=0)
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 1 << 16, 5)
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
        timed_out = not _wait(pid, cfg["server_timeout_s"])
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
    serve(
        namespaces="--no-namespaces" not in sys.argv,
        drop_privileges="--drop" in sys.argv,
        site_packages="--site-packages" in sys.argv,
    )
