"""Pure logic: no I/O, no asyncio, no clock reads. Unit-tested with plain numbers for time."""
