"""``compat.wait_for_ms`` on CPython: a result, a timeout, and a cancel that is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from device import compat


def test_the_result_comes_back_and_a_late_one_times_out() -> None:
    async def value_after(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    async def main() -> str:
        got = await compat.wait_for_ms(value_after(0), 1000)
        with pytest.raises(asyncio.TimeoutError):
            await compat.wait_for_ms(value_after(10), 20)
        return got  # type: ignore[no-any-return]

    assert asyncio.run(main()) == "done"


def test_a_cancel_that_lands_as_the_awaited_future_completes_still_cancels() -> None:
    """CPython 3.11's ``asyncio.wait_for`` returned the result here and the cancelled task ran on."""

    async def main() -> str:
        fut = asyncio.get_running_loop().create_future()

        async def waiter() -> str:
            await compat.wait_for_ms(fut, 10_000)
            return "ran on after cancel"

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)  # the waiter is inside wait_for_ms now
        fut.set_result(1)
        task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"

    assert asyncio.run(main()) == "cancelled"
