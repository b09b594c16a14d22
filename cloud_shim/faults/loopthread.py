"""An asyncio event loop in a daemon thread, for fault servers driven from synchronous tests.

The device under test may run in the test's own loop (or in a subprocess);
the fault layer then lives in a loop of its own so it keeps serving while
the test's loop is busy, and so a plain ``def test_...`` can drive it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Self, TypeVar

T = TypeVar("T")

CALL_TIMEOUT_S = 10.0


class LoopThread:
    """``start()`` a loop in a thread; ``run(coro)`` / ``call(fn)`` in it and wait; ``stop()``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(self.name + " is not running")
        return self._loop

    def start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            # Let cancelled tasks finish their cleanup before the loop closes.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(CALL_TIMEOUT_S):
            raise RuntimeError(self.name + " did not start")

    def run(self, coro: Awaitable[T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run ``coro`` in the thread's loop and return its result (or raise its exception)."""

        async def wrapper() -> T:
            return await coro

        future = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return future.result(timeout_s)

    def call(self, fn: Callable[[], T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Call ``fn()`` inside the loop (so it needs no lock) and return its result."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout_s)

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CALL_TIMEOUT_S)
        self._thread = None
        self._loop = None


class ThreadServed:
    """Base of the fault servers: ``async serve()``/``aclose()`` in your loop, or ``start()``/``stop()``
    to serve from a ``LoopThread`` of its own (sync tests, or a device running in another loop).

    Both pairs also work as context managers (``async with`` / ``with``).
    """

    thread_name = "fault-server"
    _thread: LoopThread | None = None

    async def serve(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.serve()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._thread is not None:
            return
        thread = LoopThread(self.thread_name)
        thread.start()
        self._thread = thread
        thread.run(self.serve())

    def _in_thread(self) -> LoopThread:
        if self._thread is None:
            raise RuntimeError("the sync API needs start(); in your own loop use the async methods")
        return self._thread

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        thread.run(self.aclose())
        thread.stop()
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
