"""Helpers for the pure tests, which run under pytest and under MicroPython alike.

Plain ``assert`` and these; no pytest import (MicroPython has no pytest).
"""

from device.compat import path_dirname, path_join

REPO_ROOT = path_dirname(path_dirname(path_dirname(__file__))) or "."


def repo_path(relative: str) -> str:
    return path_join(REPO_ROOT, relative)


def raises(exc_type, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call ``fn``; return the ``exc_type`` it raised, fail if it raised nothing."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("expected " + exc_type.__name__ + " from " + getattr(fn, "__name__", "call"))


def approx(a: float, b: float, tol: float = 1e-9) -> bool:
    return abs(a - b) <= tol
