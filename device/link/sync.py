"""``SyncEngine``: drains the outbox, keeps the shadow in step, runs commands.

One engine per device; the link calls ``await engine.serve(client)`` each time
a client is connected, and ``serve`` returns when that connection closes (or
raises ``LinkError`` if the session could not be set up). It talks to the
apps only through the store, so a control tick never waits for it.

Each ``serve``: subscribe to the desired document and the command topic
(QoS 1), publish status "online" (retained) and the reported document
(retained), then loop until the client closes:

1. PUBACKs: the record is done; its seq joins the batch of store acks
   (``ack_seqs`` -- or ``ack`` when the batch is the outbox's head), written
   by a task of its own (the drain goes on meanwhile) once ``ack_batch`` are
   waiting, ``ack_delay_ms`` passed, or nothing is in flight. A record leaves
   the store only after its PUBACK; a crash before the write re-sends it, and
   the cloud dedupes on ``(dev, seq)``.
2. Dropped publishes (``take_dropped``: the broker forgot the session) and,
   with a new client object, everything that was in flight: published again.
3. Desired documents: merged per key (``device.core.shadow``), applied with
   ``put_state(origin="cloud", stamp=the cloud's stamp)``; the version applied
   is kept in the private state key ``_sync.desired_version``.
4. Commands (``device.link.commands``); their results are outbox records. A
   handler runs inline, bounded by ``handler_timeout_ms`` (5 s by default):
   the drain waits for it, the control path never does.
5. Status/reported/diag publishes, then outbox records: lanes in
   ``topics.LANE_ORDER`` (event, result, telemetry), each in seq order
   (``device.link.lanes.LaneReader``: a cursor and a read-ahead page per
   lane), with at most ``window`` records in flight. With ``rate_limited`` a
   token bucket on real time lets ``drain_per_s`` records out per second,
   until the outbox is seen empty (the backlog after an outage is what it is for).
6. ``await client.wait(...)``: woken by PUBACKs and messages; otherwise the
   store is polled every ``poll_ms`` for new records and changed state.

Retention may fold telemetry that is in flight into an aggregate at the same
seq. Acking that seq would delete the aggregate, so when the store's
``compacted`` counter moved since a record was read, the record is read again
before its ack: if it changed it is published again (the cloud sees the
aggregate at that seq after the raw sample) instead of acked.

A record's ``wall_ms`` on the wire: its creation wall time if it was written
in this boot and the clock knows wall time now (``wall_now - (now_ms -
created_ms)``), else null.
"""

import asyncio
import json

from device.compat import IS_MICROPYTHON, monotonic_ms, wait_for_ms
from device.core import shadow
from device.errors import StoreError
from device.link import topics
from device.link.commands import Commands
from device.link.lanes import LaneReader, TokenBucket
from device.linkerrors import LinkBusyError, LinkClosedError, LinkError

DESIRED_VERSION_KEY = "_sync.desired_version"
_UNKNOWN = object()  # not worked out yet
SUBSCRIBE_TIMEOUT_MS = 15000

COUNTER_NAMES = (
    "serves",
    "published",
    "acked",
    "republished",
    "dropped",
    "unknown_acks",
    "store_acks",
    "ack_flushes",
    "refolded",
    "busy",
    "rate_waits",
    "reports",
    "desired_received",
    "desired_applied",
    "desired_ignored",
    "desired_malformed",
    "commands",
    "diag_published",
    "store_errors",
    "ack_timeouts",
)


class SyncEngine:
    def __init__(  # type: ignore[no-untyped-def]
        self,
        env,
        device_id: str,
        window: int = 20,
        drain_per_s: int = 0,
        policies=None,
        default_policy: str = "latest_wins",
        commands=None,
        ack_batch: int = 128,
        ack_delay_ms: int = 100,
        poll_ms: int = 50,
        diag_ms: int = 60000,
        ack_timeout_ms: int = 30000,
        read_ahead=None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        if drain_per_s < 0:
            raise ValueError("drain_per_s must be >= 0")
        self.env = env
        self.store = env.store
        self.device_id = device_id
        self.window = window
        self.drain_per_s = drain_per_s
        self.policies = shadow.check_policies(policies)
        self.default_policy = shadow.check_policy(default_policy)
        if isinstance(commands, Commands):
            self.commands = commands
        else:
            self.commands = Commands(env.store, env.clock, commands)
        self.ack_batch = max(1, ack_batch)
        self.ack_delay_ms = ack_delay_ms
        self.poll_ms = poll_ms
        self.diag_ms = diag_ms
        # A broker that accepts PUBLISHes but never acknowledges them (or a path that loses
        # PUBACKs) would hold the window full for ever: past this, drop the connection.
        self.ack_timeout_ms = ack_timeout_ms
        self._ack_wait_from = 0
        self._close_reason: str | None = None
        self.rate_limited = False
        self.counters = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0
        if read_ahead is None:
            # A page of decoded records costs heap on a board; on a host it saves thread hops.
            read_ahead = window + 8 if IS_MICROPYTHON else max(256, 2 * window)
        self._client = None
        self._dev_json = topics.device_json(device_id)  # encoded once, not per record
        self._topics = {}
        self._readers = []
        for lane in topics.LANE_ORDER:  # drain priority: first lane first
            self._topics[lane] = topics.out_topic(device_id, lane)
            self._readers.append(LaneReader(self.store, lane, read_ahead))
        self._pending: dict = {}  # packet id -> [record, store "compacted" when it was read]
        self._pending_seqs: dict = {}  # seq -> packet id
        self._acked: list = []  # [record, compacted] PUBACKed, not yet acked in the store
        self._acked_seqs: dict = {}  # seq -> True: PUBACKed, and not yet out of the store
        self._acked_since = 0
        self._acking = None  # the task removing a batch from the store, while it runs
        self._again: dict = {}  # seqs published once and lost: counted when published again
        self._reported_version = -1
        self._report_due = True
        self._status_due = True
        self._pace = TokenBucket(max(1, min(window, drain_per_s)), drain_per_s)
        self._state_polled = 0
        self._diag_at = 0
        self.bulk = None  # a device.link.bulk.BulkSender: chunks when the lanes are empty (Device.attach_link)
        # Channels of their own on this session (device/ota/channel.py): each has ``prefix`` (its topics
        # after "bp/{d}/"), ``subscriptions(device_id) -> [(topic, qos)]``, ``async on_message(rest,
        # payload)`` and ``fill(client, now_ms)`` (called each turn; publishes without waiting).
        self.extras: list = []

    # -- the session ---------------------------------------------------------------

    async def serve(self, client, rate_limited: bool = False) -> str:  # type: ignore[no-untyped-def]
        """Run while ``client`` is connected; return its close reason."""
        self.counters["serves"] += 1
        if client is not self._client:
            self._forget_in_flight()  # another session object: it will never ack what the old one sent
            if self.bulk is not None:
                self.bulk.forget()
            self._client = client
        for reader in self._readers:
            reader.reset(0)  # read again from the oldest record that is not in flight
        self.rate_limited = rate_limited and self.drain_per_s > 0
        self._pace.fill(monotonic_ms())
        self._ack_wait_from = monotonic_ms()
        self._close_reason = None
        self._report_due = True
        self._status_due = True
        d = self.device_id
        subscriptions = [(topics.desired_topic(d), 1), (topics.command_topic(d), 1)]
        for extra in self.extras:
            subscriptions.extend(extra.subscriptions(d))
        try:
            try:
                await wait_for_ms(
                    client.subscribe(subscriptions),
                    SUBSCRIBE_TIMEOUT_MS,
                )
            except Exception as exc:  # asyncio.TimeoutError has no common base with LinkError
                if isinstance(exc, LinkError):
                    raise
                raise LinkError("subscribing failed: %r" % (exc,), "subscribe") from None
            self._diag_at = monotonic_ms() - self.diag_ms  # a first diag now
            while client.closed is None:
                await self._turn(client)
        except LinkClosedError:
            pass
        now = monotonic_ms()
        for pid in client.take_dropped():
            self._lost(pid)
        for pid in client.take_acks():  # PUBACKs that came in just before the close count
            self._on_ack(pid, now)
        while self._acking is not None:  # bounded: one store ack, then it clears itself
            await self._acking
        await self._flush_acks(False)
        return self._close_reason or client.closed or "closed"

    async def _turn(self, client) -> None:  # type: ignore[no-untyped-def]
        now = monotonic_ms()
        for pid in client.take_dropped():
            self._lost(pid)
        for pid in client.take_acks():
            self._on_ack(pid, now)
        if not self._pending and (self.bulk is None or not self.bulk.in_flight()):
            self._ack_wait_from = now
        elif now - self._ack_wait_from >= self.ack_timeout_ms:
            self.counters["ack_timeouts"] += 1
            self._close_reason = "ack_timeout"
            await client.close()
            return
        for topic, payload in client.take_messages():
            await self._on_message(topic, payload)
        if now - self._state_polled >= self.poll_ms:
            self._state_polled = now
            await self._poll_state()
        if self._status_due:
            self._status_due = not self._publish_control(topics.status_topic(self.device_id), b"online", 1, True)
        if self._report_due:
            await self._publish_reported(client)
        if now - self._diag_at >= self.diag_ms:
            self._diag_at = now
            self._publish_diag(client)
            await self._expire_inbox()
        try:
            wait_ms = await self._fill(client)
        except StoreError:  # a read the medium refused: counted, tried again next turn
            self.counters["store_errors"] += 1
            wait_ms = self.poll_ms
        for extra in self.extras:
            extra.fill(client, now)
        # Acks go to the store in batches, in the background: a big batch, an old one, or nothing in flight.
        if self._acked and self._acking is None:
            if len(self._acked) >= self.ack_batch or now - self._acked_since >= self.ack_delay_ms or not self._pending:
                await self._flush_acks(True)
        if client.closed is None:
            await client.wait(wait_ms)

    # -- acks -------------------------------------------------------------------------

    def _on_ack(self, pid: int, now: int) -> None:
        self._ack_wait_from = now
        entry = self._pending.pop(pid, None)
        if entry is None:
            if self.bulk is not None and self.bulk.acked(pid):
                return
            self.counters["unknown_acks"] += 1  # status, reported, or a record from a forgotten session
            return
        seq = entry[0].seq
        del self._pending_seqs[seq]
        self.counters["acked"] += 1
        if not self._acked:
            self._acked_since = now
        self._acked.append(entry)
        self._acked_seqs[seq] = True

    def _lost(self, pid: int) -> None:
        entry = self._pending.pop(pid, None)
        if entry is None:
            if self.bulk is not None:
                self.bulk.lost(pid)
            return
        record = entry[0]
        del self._pending_seqs[record.seq]
        self.counters["dropped"] += 1
        self._again[record.seq] = True
        self._reader(record.lane).rewind(record.seq)

    def _reader(self, lane: str) -> LaneReader:
        for reader in self._readers:
            if reader.lane == lane:
                return reader  # type: ignore[no-any-return]
        raise ValueError("no lane " + lane)

    def _forget_in_flight(self) -> None:
        for pid in list(self._pending):
            self._lost(pid)

    async def _flush_acks(self, background: bool) -> None:
        """Remove PUBACKed records from the store, after checking none was folded since it was read.

        ``background``: the store ack runs as a task of its own while the drain goes on.
        """
        batch = self._acked
        if not batch:
            return
        self._acked = []
        store = self.store
        for _ in range(3):
            compacted = store.counters["compacted"]
            batch = await self._unfolded(batch, compacted)
            if store.counters["compacted"] == compacted:
                break
        if not batch:
            return
        if background:
            self._acking = asyncio.create_task(self._store_ack(batch))  # type: ignore[assignment]
        else:
            await self._store_ack(batch)

    async def _store_ack(self, batch: list) -> None:
        store = self.store
        seqs = [entry[0].seq for entry in batch]
        seqs.sort()
        try:
            first = store.seq_range()[0]
            if first == seqs[0] and seqs[-1] - seqs[0] + 1 == len(seqs):
                removed = await store.ack(seqs[-1])  # the outbox's head: one marker, one range delete
            else:
                removed = await store.ack_seqs(seqs)
        except StoreError:
            self.counters["store_errors"] += 1
            for entry in batch:  # tried again with the next batch
                self._acked.append(entry)
            self._acked_since = monotonic_ms()
            return
        finally:
            self._acking = None
        for seq in seqs:
            self._acked_seqs.pop(seq, None)
        self.counters["store_acks"] += removed
        self.counters["ack_flushes"] += 1

    async def _unfolded(self, batch: list, compacted: int) -> list:
        """The entries whose record is still what was published; the others go out again."""
        keep = []
        for entry in batch:
            record = entry[0]
            if entry[1] == compacted or record.lane != "telemetry":
                keep.append(entry)
                continue
            now = await self.store.read_outbox(1, record.seq - 1, ("telemetry",))
            if not now or now[0].seq != record.seq:
                self._acked_seqs.pop(record.seq, None)
                continue  # folded into an earlier seq's aggregate: nothing left to ack here
            if now[0].payload == record.payload:
                entry[1] = compacted
                keep.append(entry)
            else:
                self.counters["refolded"] += 1
                self._acked_seqs.pop(record.seq, None)
                self._again[record.seq] = True
                self._reader("telemetry").rewind(record.seq)
        return keep

    # -- outbox -----------------------------------------------------------------------

    async def _fill(self, client) -> int:  # type: ignore[no-untyped-def]
        """Publish records while there is room; return how long to wait before the next turn."""
        pending = self._pending
        wall_base = _UNKNOWN  # the envelope's wall time offset, found once per stretch without an await
        for reader in self._readers:
            topic = self._topics[reader.lane]
            while True:
                room = self.window - len(pending)
                client_room = client.window - client.in_flight()
                if client_room < room:
                    room = client_room
                if room <= 0:
                    return self.poll_ms  # woken by a PUBACK before that
                record = reader.peek()
                if record is None:
                    record = await reader.next()
                    wall_base = _UNKNOWN  # (a simulated clock may have moved meanwhile)
                    if record is None:
                        break
                seq = record.seq
                if seq in self._pending_seqs or seq in self._acked_seqs:
                    reader.take()  # in flight already, or on its way out of the store
                    continue
                wait = self._pace.take(monotonic_ms()) if self.rate_limited else 0
                if wait:
                    self.counters["rate_waits"] += 1
                    return wait if wait < self.poll_ms else self.poll_ms
                if wall_base is _UNKNOWN:
                    wall_base = self._wall_base()
                try:
                    pid = client.publish(topic, self._encode(record, wall_base), 1, False)
                except LinkBusyError:
                    self.counters["busy"] += 1
                    return 5 if pending else self.poll_ms  # a full send buffer drains by itself
                reader.take()
                pending[pid] = [record, reader.compacted]
                self._pending_seqs[seq] = pid
                self.counters["published"] += 1
                if seq in self._again:
                    del self._again[seq]
                    self.counters["republished"] += 1
        if self.bulk is not None and not self.rate_limited:  # every lane is drained: bulk chunks may go
            room = min(self.window - len(pending) - self.bulk.in_flight(), client.window - client.in_flight())
            if room > 0:
                await self.bulk.fill(client, room)
        if self.rate_limited and not pending and not self._acked and self.store.depth()[0] == 0:
            self.rate_limited = False  # the backlog is gone: the limit was for it
        return self.poll_ms

    def _wall_base(self):  # type: ignore[no-untyped-def]
        """Wall time minus monotonic time now, or None when the clock knows no wall time."""
        clock = self.env.clock
        wall_now = clock.wall_ms()
        return None if wall_now is None else wall_now - clock.now_ms()

    def _encode(self, record, wall_base) -> bytes:  # type: ignore[no-untyped-def]
        """``wall_base``: ``_wall_base()`` taken since the last await (the clock has not moved)."""
        wall = None
        if wall_base is not None and record.boot == self.store.boot_id:
            wall = wall_base + record.created_ms  # = wall_now - (now_ms - created_ms)
        return topics.encode_record(self.device_id, record, wall, self._dev_json)

    # -- shadow -----------------------------------------------------------------------

    async def _poll_state(self) -> None:
        version = shadow.reported_version(await self.store.load_state())
        if version != self._reported_version:
            self._report_due = True

    async def _publish_reported(self, client) -> None:  # type: ignore[no-untyped-def]
        doc = shadow.reported_doc(await self.store.load_state())
        if self._publish_control(topics.reported_topic(self.device_id), json.dumps(doc).encode(), 1, True):
            self._reported_version = doc["version"]
            self._report_due = False
            self.counters["reports"] += 1

    def _publish_control(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Publish a status/reported/diag message; False when the window is full (tried again next turn)."""
        try:
            self._client.publish(topic, payload, qos, retain)  # type: ignore[attr-defined]
        except LinkBusyError:
            self.counters["busy"] += 1
            return False
        return True

    async def _on_message(self, topic: str, payload: bytes) -> None:
        _, rest = topics.split_topic(topic)
        if rest == "shadow/desired":
            await self._on_desired(payload)
        elif rest == "cmd":
            self.counters["commands"] += 1
            try:
                await self.commands.handle(payload)
            except StoreError:
                self.counters["store_errors"] += 1
        elif rest is not None:
            for extra in self.extras:
                if rest.startswith(extra.prefix):
                    await extra.on_message(rest, payload)

    async def _on_desired(self, payload: bytes) -> None:
        self.counters["desired_received"] += 1
        try:
            desired = shadow.parse_desired(payload)
        except ValueError:
            self.counters["desired_malformed"] += 1
            return
        if desired is None:
            return  # the retained document was cleared
        store = self.store
        local = await store.load_state()
        mark = local.get(DESIRED_VERSION_KEY)
        last_applied = mark.value if mark is not None and isinstance(mark.value, int) else 0
        changes, report, applied = shadow.merge(local, desired, self.policies, self.default_policy, last_applied)
        self.counters["desired_ignored"] += len(report) + len(shadow.private_keys(desired))
        wall = self.env.clock.wall_ms()
        try:
            for key, value, stamp in changes:
                await store.put_state(key, value, "cloud", wall, stamp)
                self.counters["desired_applied"] += 1
            if applied != last_applied:
                await store.put_state(DESIRED_VERSION_KEY, applied, "cloud", wall)
        except StoreError:
            self.counters["store_errors"] += 1
        if changes or report:
            self._report_due = True

    # -- diagnostics --------------------------------------------------------------------

    def _publish_diag(self, client) -> None:  # type: ignore[no-untyped-def]
        store = self.store
        depth = store.depth()
        body = {
            "sync": self.stats(),
            "client": client.stats(),
            "store": {"depth": depth[0], "bytes": depth[1], "counters": store.counters},
        }
        try:
            client.publish(topics.diag_topic(self.device_id), json.dumps(body).encode(), 0, False)
        except LinkBusyError:
            self.counters["busy"] += 1
            return
        self.counters["diag_published"] += 1

    async def _expire_inbox(self) -> None:
        try:
            await self.commands.expire_inbox()
        except StoreError:
            self.counters["store_errors"] += 1

    def stats(self) -> dict:
        out = dict(self.counters)
        for name in self.commands.counters:
            out["commands_" + name] = self.commands.counters[name]
        out["in_flight"] = len(self._pending)
        out["acks_waiting"] = len(self._acked)
        out["rate_limited"] = self.rate_limited
        if self.bulk is not None:
            out["bulk"] = self.bulk.stats()
        return out
