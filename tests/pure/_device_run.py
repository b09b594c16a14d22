"""Running a whole ``Device`` in simulated time for the app tests (also under MicroPython)."""

import asyncio


def run(device, env, ms, then=None):  # type: ignore[no-untyped-def]
    """Start ``device``, advance its clock ``ms``, await ``then()`` if given, stop; return its first app."""

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        await env.clock.advance(ms)
        if then is not None:
            await then()
        await device.stop()

    asyncio.run(main())
    return device.apps[0]


def events(env, kind):  # type: ignore[no-untyped-def]
    """The payloads of the outbox's ``event`` records of type ``kind``, oldest first."""
    out = []

    async def read():  # type: ignore[no-untyped-def]
        for record in await env.store.read_outbox(100000):
            if record.lane == "event" and record.payload.get("type") == kind:
                out.append(record.payload)

    asyncio.run(read())
    return out
