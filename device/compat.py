"""The one module that knows which interpreter it runs on.

Everything else in ``device/`` and ``hw/`` imports interpreter-specific
things from here: ``const``, monotonic ticks, ``sleep_ms`` and small path
helpers (MicroPython has no ``os.path``).
"""

import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"

if IS_MICROPYTHON:
    import time

    from micropython import const  # type: ignore[import-not-found,unused-ignore]

    _ticks_ms = time.ticks_ms  # type: ignore[attr-defined]
    _ticks_diff = time.ticks_diff  # type: ignore[attr-defined]
    _last_raw = _ticks_ms()
    _elapsed_ms = 0

    def monotonic_ms() -> int:
        """Milliseconds since boot that never wrap (board ticks wrap)."""
        global _last_raw, _elapsed_ms
        raw = _ticks_ms()
        _elapsed_ms += _ticks_diff(raw, _last_raw)
        _last_raw = raw
        return _elapsed_ms

    def perf_us() -> int:
        return time.ticks_us()  # type: ignore[attr-defined,no-any-return,return-value,unused-ignore]

    def perf_diff_us(end: int, start: int) -> int:
        return time.ticks_diff(end, start)  # type: ignore[attr-defined,no-any-return]

    def collect_garbage() -> None:
        import gc

        gc.collect()

    def heap_used() -> int:
        import gc

        return gc.mem_alloc()  # type: ignore[attr-defined,no-any-return]

else:
    import time

    def const(value: int) -> int:  # type: ignore[no-redef]
        return value

    _origin_ns = time.monotonic_ns()

    def monotonic_ms() -> int:
        """Milliseconds since this process started; never wraps."""
        return (time.monotonic_ns() - _origin_ns) // 1_000_000

    def perf_us() -> int:
        return time.perf_counter_ns() // 1000

    def perf_diff_us(end: int, start: int) -> int:
        return end - start

    def collect_garbage() -> None:
        import gc

        gc.collect()

    def heap_used() -> int:
        # CPython has no fixed heap; report the traced figure when tracing.
        import tracemalloc

        if tracemalloc.is_tracing():
            return tracemalloc.get_traced_memory()[0]
        return -1


async def sleep_ms(ms: int) -> None:
    """Real sleep on either interpreter."""
    import asyncio

    if IS_MICROPYTHON:
        await asyncio.sleep_ms(ms)  # type: ignore[attr-defined]
    else:
        await asyncio.sleep(ms / 1000)


async def wait_for_ms(awaitable, ms: int):  # type: ignore[no-untyped-def]
    """Await with a real-time limit; raises ``asyncio.TimeoutError`` (both interpreters)."""
    import asyncio

    if IS_MICROPYTHON:
        return await asyncio.wait_for_ms(awaitable, ms)  # type: ignore[attr-defined]
    return await asyncio.wait_for(awaitable, ms / 1000)


def path_dirname(path: str) -> str:
    i = path.rfind("/")
    if i < 0:
        return ""
    return path[:i] if i > 0 else "/"


def path_join(base: str, name: str) -> str:
    if not base or name.startswith("/"):
        return name
    if base.endswith("/"):
        return base + name
    return base + "/" + name


def release_modules(names: tuple) -> None:
    """Drop config-time modules on MicroPython so their code returns to the heap.

    A no-op on CPython, where memory is plentiful and tests keep using them.
    Callers must hold no references into these modules.
    """
    if not IS_MICROPYTHON:
        return
    for name in names:
        if name in sys.modules:
            del sys.modules[name]
        parent, _, child = name.rpartition(".")
        package = sys.modules.get(parent)
        if package is not None and child in package.__dict__:
            delattr(package, child)
    collect_garbage()


def tune_gc(heap_fraction: int = 16) -> None:
    """On MicroPython, collect after every 1/``heap_fraction`` of the free heap is allocated.

    By default the collector runs only when an allocation fails, so short-lived
    garbage spreads over the whole heap and long-lived objects land between it:
    the heap fragments until a 500-byte block cannot be found with 20 KB free.
    Collecting early keeps long-lived objects packed. A no-op on CPython.
    """
    if not IS_MICROPYTHON:
        return
    import gc

    gc.collect()
    gc.threshold(max(2048, gc.mem_free() // heap_fraction))  # type: ignore[attr-defined]
