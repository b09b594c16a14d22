"""The cloud link: DNS, MQTT clients, the connectivity state machine and the sync engine.

Nothing here runs on the control path. The link and the sync engine are
supervised tasks of their own; they talk to the apps only through the store
(outbox, state cache, inbox) and never make a control tick wait.

Modules (one job each; imports point down this list, never up):

* ``topics``       the MQTT topic layout (below) and the record envelope
* ``client``       ``ClientBase``: the interface both MQTT clients implement, and
                   the book-keeping they share (acks, bounded message queue, activity)
* ``stream``       dialling and TLS contexts for the portable client (PEM -> DER on MicroPython)
* ``mqtt``         portable asyncio MQTT 3.1.1 client (MicroPython and CPython), its
                   codec in ``device/core/mqtt_codec.py``
* ``paho_socket``, ``paho_client``  CPython only: paho-mqtt driven from asyncio socket
                   readiness (no paho thread); we dial TCP + TLS ourselves so an IP can be
                   dialled with the host name kept for SNI and verification
* ``dns``          non-blocking UDP DNS client (A records), codec in ``device/core/dns_codec.py``
* ``resolver``     ``resolve(host, budget_ms)``: ``UdpResolver`` (MicroPython and tests),
                   ``SystemResolver`` (CPython ``getaddrinfo``), ``StaticResolver`` (tests)
* ``addrbook``     last-known-good addresses per endpoint, kept on disk in the store
* ``lanes``        per-lane outbox reading and the post-outage drain rate limiter
* ``commands``     cloud commands: id dedupe through the store inbox, expiry, results
* ``bulk``         chunked, resumable upload of camera clips when the lanes are drained
* ``sync``         ``SyncEngine``: outbox drain (QoS 1, window, lane priority, rate limit,
                   ack timeout), shadow (``device/core/shadow.py``), commands
* ``link``         ``Link``: endpoints x candidates, backoff, state machine
                   (``device/core/linkstate.py``), outage receipts
* ``build``        picks the client and resolver for a board; ``--broker`` URLs

Topic layout (``{d}`` is the device id; every payload is UTF-8 JSON)::

    bp/{d}/out/{lane}        device -> cloud  QoS 1  outbox records, lane = event | result | telemetry
    bp/{d}/shadow/reported   device -> cloud  QoS 1  retained  the device's state document
    bp/{d}/shadow/desired    cloud -> device  QoS 1  retained  what the cloud wants
    bp/{d}/shadow/delta      cloud -> observers QoS 1 retained {version, state: {key: desired value}}:
                                                     desired keys the device does not report so; empty
                                                     state once it agrees (``cloud_shim/shadow_service.py``;
                                                     the device does not subscribe)
    bp/{d}/cmd               cloud -> device  QoS 1  commands (id, expiry); results go out on lane ``result``
    bp/{d}/status            device -> cloud  QoS 1  retained  "online" / "offline" (the last will)
    bp/{d}/diag              device -> cloud  QoS 0  counters (link, sync, store)
    bp/{d}/clip/{id}         device -> cloud  QoS 1  a chunk of camera clip {id} (``bulk``): a JSON
                                                     header line {dev, src, id, off, n, total, sha256,
                                                     meta (first chunk)}, a newline, n raw bytes
    bp/{d}/ota/get           device -> cloud  QoS 0  OTA chunk request {bundle, off, n} (``device/ota/channel.py``)
    bp/{d}/ota/chunk         cloud -> device  QoS 1  a JSON header line {bundle, off, n, total} or
                                                     {bundle, error}, a newline, n raw bytes
                                                     (``cloud_shim/ota_service.py``)

An outbox record on the wire (``topics.encode_record``)::

    {"dev": d, "boot": b, "seq": s, "lane": l, "t_ms": created monotonic ms,
     "wall_ms": creation wall time or null when the device had no wall clock, "p": payload}

The cloud deduplicates on ``(dev, seq)``: QoS 1 may deliver a record twice (a lost
PUBACK), never zero times once the store acked it. Clip chunks are deduplicated on
``(dev, id, off)`` and a clip counts once its bytes match its sha256
(``cloud_shim/clips.py``); upload progress survives disconnects and reboots in the
private state key ``_bulk.camera``.
"""
