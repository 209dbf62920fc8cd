"""The small-matrix kernel (csrc/include/sensinet/small_gemm.hpp) compiled on its own with AddressSanitizer
and UBSan, for each x86-64 level this CPU runs (AVX2+FMA and AVX-512 take different code), and checked on
6000 random shapes against a double-precision reference (tests/cpp/small_gemm_check.cpp). Skipped without
a C++ compiler or Eigen headers."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "cpp" / "small_gemm_check.cpp"


def _eigen_dir():
    candidates = [Path("/usr/include/eigen3"), Path(sys.prefix) / "include" / "eigen3"]
    candidates += [Path(p) / "cmeel.prefix" / "include" / "eigen3" for p in sys.path if p]
    return next((c for c in candidates if (c / "Eigen" / "Core").is_file()), None)


def _cpu_flags() -> set:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


LEVELS = {"x86-64-v3": {"avx2", "fma"}, "x86-64-v4": {"avx512f", "avx512dq", "avx512vl", "avx512bw"}}


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_small_gemm_random_shapes_under_sanitizers(level, tmp_path):
    cxx = shutil.which("g++") or shutil.which("clang++")
    eigen = _eigen_dir()
    if cxx is None or eigen is None or not SOURCE.is_file():
        pytest.skip("needs a C++ compiler, Eigen headers and the source tree")
    if not LEVELS[level] <= _cpu_flags():
        pytest.skip(f"this CPU does not run {level}")
    exe = tmp_path / "check"
    cmd = [cxx, "-std=c++17", "-O1", "-g", f"-march={level}", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-Wno-ignored-attributes", f"-I{ROOT / 'csrc' / 'include'}", f"-I{eigen}",
           str(SOURCE), "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    if build.returncode != 0 and "sanitize" in build.stderr:
        pytest.skip("the compiler has no sanitizer runtime")
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "mismatches: 0" in run.stdout
