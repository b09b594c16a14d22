"""A store writer for the kill -9 test: appends as fast as it can until it is killed.

    python|micropython tests/store/writer.py REPO BACKEND PATH RUN TASKS [FSYNC]

Opens the store (``backend`` ``log`` or ``sqlite``) at ``PATH``, then
``TASKS`` appender tasks (``FSYNC`` 0: the store's ``fsync`` off) append records whose payload is ``payload(RUN, i)``;
the first task also acks the oldest records now and then, puts state key
``w`` with an increasing value and adds inbox ids. Every operation is
announced on stdout before it starts (lower-case letter) and confirmed once
it returned (upper case), one flushed line each, so the test knows what was
reported durable and what was in flight when the SIGKILL landed::

    B boot next_seq        the store is open
    a i / A seq i          append of payload(RUN, i)
    k upto / K upto        ack(upto)
    p value / P value version stamp     put_state("w", value)
    i cid / I cid          inbox_add(cid, far future)

Runs under CPython and the MicroPython Unix port (the ``log`` backend).
"""

import sys

ACK_EVERY = 16  # appends between acks (first task)
ACK_OLDEST = 24  # an ack removes up to this many of the oldest records
PUT_EVERY = 8
INBOX_EVERY = 64
INBOX_EXPIRES_MS = 1 << 50


def payload(run: int, i: int) -> dict:
    return {"w": run, "i": i, "pad": "p" * (i % 50)}


def lane(i: int) -> str:
    if i % 5 == 0:
        return "event"
    if i % 11 == 0:
        return "result"
    return "telemetry"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    flush = getattr(sys.stdout, "flush", None)
    if flush is not None:
        flush()


class Writer:
    def __init__(self, store, run: int) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.run = run
        self.count = 0

    async def appender(self, first: bool) -> None:
        store = self.store
        run = self.run
        while True:
            self.count += 1
            i = self.count
            say("a %d" % i)
            seq = await store.append(lane(i), payload(run, i), i)
            say("A %d %d" % (seq, i))
            if not first:
                continue
            if i % ACK_EVERY == 0:
                oldest = await store.read_outbox(ACK_OLDEST)
                if oldest:
                    upto = oldest[-1].seq
                    say("k %d" % upto)
                    await store.ack(upto)
                    say("K %d" % upto)
            if i % PUT_EVERY == 0:
                old = await store.get_state("w")
                value = (old.value if old is not None else 0) + 1
                say("p %d" % value)
                entry = await store.put_state("w", value, "local", None)
                say("P %d %d %d" % (entry.value, entry.version, entry.stamp))
            if i % INBOX_EVERY == 0:
                cid = "r%d-%d" % (run, i)
                say("i " + cid)
                await store.inbox_add(cid, INBOX_EXPIRES_MS)
                say("I " + cid)


async def main(backend: str, path: str, run: int, tasks: int, fsync: bool = True) -> None:
    from device.store import open_store

    store = open_store({"backend": backend, "path": path, "budget_bytes": 1 << 22, "fsync": fsync})
    await store.open()
    say("B %d %d" % (store.boot_id, store.next_seq()))
    writer = Writer(store, run)
    if tasks == 1:
        await writer.appender(True)
    import asyncio

    await asyncio.gather(*[writer.appender(n == 0) for n in range(tasks)])


def run_without_loop(coro) -> None:  # type: ignore[no-untyped-def]
    """Drive a coroutine that never suspends (the log backend does blocking I/O) without asyncio.

    Importing asyncio is most of CPython's start-up here (~50 ms of ~70); a
    writer is started hundreds of times.
    """
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("the store suspended: run the writer with TASKS > 1 (asyncio)")


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    args = (sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), len(sys.argv) < 7 or sys.argv[6] != "0")
    if args[0] == "log" and args[3] == 1:
        run_without_loop(main(*args))
    else:
        import asyncio

        asyncio.run(main(*args))
