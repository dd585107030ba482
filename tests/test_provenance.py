"""What a run records about where it ran: the CPU facts that change speed and bf16 numerics."""

from __future__ import annotations

from pathlib import Path

import pytest

from spgg_env import models, provenance

CPUINFO = """processor\t: 0
model name\t: Example Xeon
flags\t\t: fpu sse avx2 {extra}

processor\t: 1
model name\t: Example Xeon
flags\t\t: fpu sse avx2 {extra}
"""


@pytest.fixture
def cpuinfo(monkeypatch, tmp_path):
    """Point /proc/cpuinfo reads at a file with the given extra flags."""
    real_read_text = Path.read_text

    def use(extra: str | None) -> None:
        fake = tmp_path / "cpuinfo"
        if extra is not None:
            fake.write_text(CPUINFO.format(extra=extra))

        def read_text(self, *args, **kwargs):
            if str(self) == "/proc/cpuinfo":
                if extra is None:
                    raise FileNotFoundError(self)
                return real_read_text(fake, *args, **kwargs)
            return real_read_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", read_text)
        provenance.cpu_info.cache_clear()

    yield use
    provenance.cpu_info.cache_clear()


@pytest.mark.parametrize(("extra", "avx512", "bf16"), [
    ("", False, False),
    ("avx512f avx512bw", True, False),
    ("avx512f avx512_bf16", True, True),
    ("avx512f amx_tile amx_bf16", True, True),
])
def test_cpu_info_reads_model_and_the_flags_that_matter(cpuinfo, extra, avx512, bf16):
    cpuinfo(extra)
    assert provenance.cpu_info() == {"model": "Example Xeon", "avx512": avx512,
                                     "native_bf16": bf16}
    assert models.cpu_has_bf16() is bf16
    line = provenance.machine_description()
    assert "Example Xeon" in line
    assert line.endswith("native bf16") and ("no native bf16" in line) is not bf16
    assert ("AVX-512" in line) is avx512


def test_two_cpus_that_differ_only_in_bf16_get_different_machine_lines(cpuinfo):
    """A board groups timings by this line: the same core count and model name with and without
    native bf16 are different setups (bf16 runs differ in speed and in texts)."""
    cpuinfo("avx512f")
    without = provenance.machine_description()
    cpuinfo("avx512f amx_bf16")
    assert provenance.machine_description() != without


def test_no_cpuinfo_still_describes_the_machine(cpuinfo):
    cpuinfo(None)
    assert provenance.cpu_info() == {"model": "", "avx512": False, "native_bf16": False}
    assert provenance.machine_description().endswith("CPUs, no native bf16")


def test_every_run_environment_names_its_machine():
    environment = provenance.environment()
    assert environment["machine"] == provenance.machine_description()
    assert {"packages", "python", "platform", "git", "command"} <= set(environment)
