"""Long OTA work in steps, so the event loop (and the control loop) keeps running.

Verifying a signature and copying a bundle into a slot take seconds on a
microcontroller. The functions that do it are generators: they ``yield``
between pieces of work (a block hashed or copied, 16 bits of the signature's
scalar multiplication) and ``return`` their result. The OTA task runs them
with ``await run_async(gen)`` (back to the event loop at every yield);
tests, the harness and the host tools call ``run(gen)`` (all at once).
"""

from device.compat import sleep_ms


def run(gen):  # type: ignore[no-untyped-def]
    """Run the step generator ``gen`` to its end; its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


async def run_async(gen):  # type: ignore[no-untyped-def]
    """Run ``gen`` giving the event loop a turn after every step (no time passes on the device clock)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
        await sleep_ms(0)
