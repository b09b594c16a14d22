"""Run the pure tests (tests/pure/test_*.py) under MicroPython.

    micropython tests/portable/mprun.py [-v] [MODULE_FILTER ...]

Imports every tests/pure/test_*.py module (sorted), calls every top-level
callable named ``test_*`` (sorted); an ``async def`` test is run with
``asyncio.run``. A module that fails to import counts as one failure.
Prints each failure with its traceback and ends with exactly one line:

    micropython: N passed, M failed

Exit status 1 on any failure, or when nothing ran (a filter that matches no
module, or no tests at all), so a silently empty run is never green.
A MODULE_FILTER that is a full module name (``test_backoff``) selects that
module alone; any other keeps the modules whose name contains it (``store``).

Also runs under CPython (handy for comparing), printing ``cpython: ...``.
"""

import sys

_IS_MP = sys.implementation.name == "micropython"


def _dirname(path):
    i = path.rfind("/")
    if i < 0:
        return ""
    return path[:i] if i > 0 else "/"


def _parent(path):
    if path in ("", "."):
        return ".."
    if path.endswith(".."):
        return path + "/.."
    return _dirname(path) or "."


def _repo_root():
    # This file is <root>/tests/portable/mprun.py, however it was named on the command line.
    return _parent(_parent(_dirname(__file__) or "."))


def _print_exception(exc):
    if _IS_MP:
        sys.print_exception(exc)  # type: ignore[attr-defined]
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stdout)


def _is_awaitable(value):
    # MicroPython coroutines are generators; CPython's have __await__.
    return hasattr(value, "__await__") or (hasattr(value, "send") and hasattr(value, "throw"))


def _call(fn):
    result = fn()
    if _is_awaitable(result):
        import asyncio

        asyncio.run(result)


def _unload(qualified, name):
    # Drop the finished test module so a small heap (-X heapsize=...) holds one
    # test module at a time, as a board holds one app; device modules stay cached.
    import gc

    sys.modules.pop(qualified, None)
    package = sys.modules.get("tests.pure")
    if package is not None and hasattr(package, name):
        delattr(package, name)
    gc.collect()


def _module_names(root, filters):
    import os

    names = []
    for entry in os.listdir(root + "/tests/pure"):
        if entry.startswith("test_") and entry.endswith(".py"):
            name = entry[:-3]
            # A full module name selects that module only; anything else is a substring.
            if not filters or name in filters or any(f in name for f in filters if not f.startswith("test_")):
                names.append(name)
    names.sort()
    return names


def main(argv):
    verbose = "-v" in argv
    filters = [a for a in argv if a != "-v"]
    root = _repo_root()
    if root not in sys.path:
        sys.path.insert(0, root)
    label = "micropython" if _IS_MP else "cpython"

    passed = 0
    failed = 0
    for name in _module_names(root, filters):
        qualified = "tests.pure." + name
        try:
            module = __import__(qualified, None, None, [name])
        except Exception as exc:  # an import error fails the module, not the run
            failed += 1
            print("FAIL %s (import)" % qualified)
            _print_exception(exc)
            continue
        # __import__ returns the top package on some ports without a fromlist.
        if getattr(module, "__name__", "") != qualified:
            module = sys.modules[qualified]
        tests = sorted(n for n in dir(module) if n.startswith("test_") and callable(getattr(module, n)))
        for test in tests:
            try:
                _call(getattr(module, test))
            except Exception as exc:  # report and go on; the summary fails the run
                failed += 1
                print("FAIL %s.%s" % (qualified, test))
                _print_exception(exc)
            else:
                passed += 1
                if verbose:
                    print("ok   %s.%s" % (qualified, test))
        _unload(qualified, name)

    print("%s: %d passed, %d failed" % (label, passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
