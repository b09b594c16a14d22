"""The OTA task: offers, outage gates, the chunked download, the switch and the trial-boot gate.

``start_ota(device)`` (called by ``Device.start`` when the board's ``ota``
section is enabled) builds an ``OtaAgent``: with a link it registers the
command ``ota_update`` and the chunk channel (``device.ota.channel``, an
extra of the sync engine), and it adds the task ``ota`` (not watched by the
watchdog feeder: an update may be slow, the control loop never waits for it).

What happens:

* ``ota_update`` ``{"bundle", "size", "version"}`` -> ``Updater.offer``; the
  result is ``{"accepted", "reason", "state"}``. An accepted offer is on the
  device's flash (``ota/dl.json``): it survives reboots, and the same bundle
  offered again resumes where the download stopped; another bundle replaces it.
* Gates, before a download starts or goes on and before the switch: the link
  is ``online`` (not degraded, not offline) and the outbox holds at most
  ``backlog_max`` records (the catch-up after an outage goes first). A closed
  gate defers the update (reported once per reason) until it opens.
* The download: one chunk request at a time through the channel (re-asked
  after ``request_timeout_ms``); each chunk is appended and synced by the
  Updater. Then ``finish``: whole-file hash, signature, manifest checks, staged
  into the inactive slot, the switch recorded; then ``reset("switch")``.
* The trial boot (the record's trial slot is the booted one): the health gate
  (``device.ota.health``) decides: pass -> ``Slots.confirm`` and "installed";
  fail -> ``Slots.rollback(reason)``, "rolled_back" and ``reset("rollback")``.
  A crash or watchdog reset of a trial boot is rolled back by the boot
  selector; the next boot reports it (the record's ``last``, once).

Every step is an outbox "event" record ``{"kind": "ota", "stage", "bundle",
"version", "reason"}``; every refusal carries a reason code
(``device.ota.manifest.REASONS``) or a gate text, never silently.

A file error while the update is written (a full flash: ``no_space``, any
other: ``io_error``) discards it and is one refusal (``Updater.discard``); the
device runs on its current image and a later offer starts afresh.

Heap: the signature, manifest, bundle and staging code (``ecdsa``, ``manifest``,
``bundlefmt``, ``slots``, ``updater``: ~18 KB on the unix port) is imported at
the first offer, or at boot only when a download is on the flash. The boot path
(boot record, last outcome, trial health gate) needs only ``otafs``,
``bootsel`` and ``record``.

``reset(reason)`` reboots: ``machine.reset()`` on a board; on the host
``SystemExit(EXIT_RESET)``, which ``brickproof boot`` takes as a reset
(``tools/hostboot.py``); tests pass a callback (``Device.ota_reset``).
"""

import json

from device.compat import IS_MICROPYTHON
from device.errors import ConfigError
from device.log import get_logger
from device.ota import record
from device.ota.bootsel import RECORD, read_record
from device.ota.channel import ChunkChannel
from device.ota.otafs import OtaFiles

_log = get_logger("ota")

EXIT_RESET = 75  # the host's "machine.reset()": brickproof boot boots again
ROOT_ENV = "BRICKPROOF_OTA_ROOT"
DOWNLOAD_POLL_MS = 20  # how often the task looks for a chunk while downloading
PORTABLE_CHUNK_MAX = 7680  # the portable MQTT client takes packets up to 8 KiB (device/link/mqtt.py)
LINK_LOOK_MS = 250  # during a trial: how often the link state is looked at
# The download's files (device.ota.slots: DL_JSON, DL_PART and their temp files): any of them on the
# flash at boot means the updater has a download to resume or repair.
DL_FILES = ("ota/dl.json", "ota/dl.part", "ota/dl.json.tmp", "ota/dl.part.tmp")
_HEX = "0123456789abcdef"

IDLE = "idle"
DEFERRED = "deferred"
DOWNLOADING = "downloading"
SWITCHING = "switching"
TRIAL = "trial"


def default_reset(reason: str) -> None:
    _log.info("reset: %s", reason)
    if IS_MICROPYTHON:
        from hw.mp.reset import reset_board

        reset_board()
    raise SystemExit(EXIT_RESET)


def ota_root(settings: dict) -> str:
    """The device root holding ``ota/``: the board's ``ota.root``, else (host) $BRICKPROOF_OTA_ROOT, else cwd."""
    root = settings["root"]
    if not root and not IS_MICROPYTHON:
        import os

        root = os.environ.get(ROOT_ENV, "")
    return root  # type: ignore[no-any-return]


def running_version(files: OtaFiles, booted: str) -> str:
    """The version of the booted image: its slot's manifest, or ``device.version`` for factory."""
    if booted != "factory":
        manifest = files.read_json("ota/" + booted + "/bundle.json")
        if isinstance(manifest, dict) and isinstance(manifest.get("version"), str):
            return manifest["version"]  # type: ignore[no-any-return]
    from device.version import VERSION

    return VERSION


def chunk_bytes(device, settings: dict) -> int:  # type: ignore[no-untyped-def]
    """``ota.chunk_bytes``, capped to what the device's MQTT client can receive in one packet."""
    n = settings["chunk_bytes"]
    link = device.env.board.get("link")
    if link is not None and n > PORTABLE_CHUNK_MAX:
        from device.link.build import client_kind

        if client_kind(link["client"]) == "portable":
            n = PORTABLE_CHUNK_MAX
    return n  # type: ignore[no-any-return]


def pubkey_path(root: str, name: str) -> str:
    """``ota.pubkey_file``; a relative name is in the device root (where provisioning put it)."""
    if name.startswith("/") or not root:
        return name
    return root.rstrip("/") + "/" + name


def pub_problem(data) -> str:  # type: ignore[no-untyped-def]
    """Why ``data`` is not shaped like a P-256 public key JSON ("" when it is).

    The shape only: the curve check needs ``ecdsa``, loaded at the first offer
    (``brickproof flash`` checked the key in full when it put it on the board).
    """
    if not isinstance(data, dict):
        return "public key must be a JSON object"
    if data.get("alg") != "ecdsa-p256-sha256":
        return "public key alg must be ecdsa-p256-sha256"
    for name, size in (("x", 64), ("y", 64), ("kid", 16)):
        value = data.get(name)
        if not isinstance(value, str) or len(value) != size or any(c not in _HEX for c in value):
            return "public key %s must be %d lowercase hex digits" % (name, size)
    return ""


def load_pub(path: str) -> dict:
    """The public key JSON (ConfigError naming ``ota.pubkey_file`` when it cannot be read)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError("ota.pubkey_file", "cannot use %s: %s" % (path, exc)) from None
    why = pub_problem(data)
    if why:
        raise ConfigError("ota.pubkey_file", "cannot use %s: %s" % (path, why))
    return data  # type: ignore[no-any-return]


class OtaAgent:
    def __init__(self, device, settings: dict, reset=None, files=None) -> None:  # type: ignore[no-untyped-def]
        """``files``: the ``OtaFiles`` of the device root (tests pass a subclass); default ``ota.root``."""
        self.device = device
        self.settings = settings
        self.reset = reset or default_reset
        self.clock = device.env.clock
        self.store = device.env.store
        root = ota_root(settings)
        if root and not IS_MICROPYTHON:
            import os

            os.makedirs(root, exist_ok=True)  # a host device's root (a board's is its filesystem)
        self.files = files if files is not None else OtaFiles(root)
        rec = read_record(self.files)[0]
        self.booted = rec["booted"] if rec else "factory"
        self.version = running_version(self.files, self.booted)
        self.pub = load_pub(pubkey_path(root, settings["pubkey_file"]))
        self.chunk_bytes = chunk_bytes(device, settings)
        self.target = None  # the bundle target taken; None: this interpreter's (manifest.target_here)
        self._updater: object = None  # the Updater (and its Slots), built at the first need: ``updater()``
        self._looked = False  # the flash was looked at for a download left by an earlier boot
        self._key_checked = False
        self.channel = ChunkChannel(settings["request_timeout_ms"])
        self.state = IDLE
        self.deferred = ""  # the gate reason last reported ("" while the gates are open)
        self.gate: object = None  # the HealthGate of a trial boot, while it runs
        self.counters = {"offers": 0, "refused": 0, "deferred": 0, "chunks": 0, "finished": 0}

    def updater(self):  # type: ignore[no-untyped-def]
        """The Updater, importing the verify and staging code the first time (see the module's Heap note)."""
        if self._updater is None:
            from device.ota.manifest import target_here
            from device.ota.slots import Slots
            from device.ota.updater import Updater

            slots = Slots(self.files, self.version, self.settings["max_trial_boots"])
            updater = Updater(
                slots,
                self.pub,
                self.device.env.board["name"],
                self.version,
                self.target or target_here(),
                self.settings["max_bundle_bytes"],
                self.chunk_bytes,
            )
            self._updater = updater
            updater.resume()  # a power cut may have left the part file ahead of its progress
        return self._updater

    def _key_problem(self) -> str:
        """The full check of the device's public key (on the curve, kid matching), once, at an offer."""
        if self._key_checked:
            return ""
        from device.ota.ecdsa import load_pub as load_key

        try:
            load_key(self.pub)
        except ValueError as exc:
            return "untrusted_key: device public key unusable: %s" % (exc,)
        self._key_checked = True
        return ""

    @property
    def slots(self):  # type: ignore[no-untyped-def]
        """The updater's ``Slots`` (loads the updater: for tests and tools, not the boot path)."""
        return self.updater().slots

    # -- the boot record (record functions directly: Slots is not loaded on the boot path) --------

    def _record(self) -> "dict | None":
        return read_record(self.files)[0]

    def _write_record(self, rec: dict) -> None:
        self.files.write_json(RECORD, rec)

    def attach(self, engine) -> None:  # type: ignore[no-untyped-def]
        engine.extras.append(self.channel)
        engine.commands.register("ota_update", self.on_offer)

    # -- reports --------------------------------------------------------------------

    async def event(self, stage: str, bundle=None, version=None, reason: str = "") -> None:  # type: ignore[no-untyped-def]
        body = {"kind": "ota", "stage": stage, "bundle": bundle, "version": version, "reason": reason}
        _log.info("ota %s %s %s", stage, version, reason)
        await self.store.append("event", body, self.clock.now_ms())

    async def _report_last(self) -> None:
        rec = self._record()
        last = rec.get("last") if rec else None
        if last:  # reported first, cleared after: a cut in between reports it twice, never not at all
            await self.event(last["event"], last.get("bundle"), last.get("version"), last.get("reason") or "")
            self._clear_last()

    def _clear_last(self) -> None:
        rec = self._record()
        if rec is not None and rec["last"] is not None:
            self._write_record(record.clear_last(rec))

    def _offer(self):  # type: ignore[no-untyped-def]
        """The offer being downloaded, or None; without loading the updater while there is none."""
        if self._updater is None:
            if self._looked:
                return None  # no download at boot, no offer since: nothing on the flash
            self._looked = True
            if not any(self.files.exists(rel) for rel in DL_FILES):
                return None
        return self.updater().offered()

    # -- the command ------------------------------------------------------------------

    async def on_offer(self, args: dict) -> dict:
        """``ota_update``: take (or refuse) an offer; the download itself runs in the task."""
        self.counters["offers"] += 1
        bundle, version = args.get("bundle"), args.get("version")
        if self.state == TRIAL:
            accepted, reason = False, "busy: a trial boot is being checked"
        elif self.state == SWITCHING:
            accepted, reason = False, "busy: switching to a new image"
        else:
            reason = self._key_problem()  # no download of what could never be verified
            accepted = False
            if not reason:
                try:
                    accepted, reason = self.updater().offer(args)
                except (ValueError, TypeError, KeyError) as exc:
                    accepted, reason = False, "bad_format: %s" % (exc,)
        if not accepted:
            self.counters["refused"] += 1
            await self.event("refused", bundle, version, reason)
            return {"accepted": False, "reason": reason, "state": self.state}
        self.channel.cancel()  # a request for a replaced bundle is of no use
        self.state = IDLE
        self.deferred = ""
        await self.event("accepted", bundle, version, reason)
        gate = self.gate_closed()
        if gate:
            await self._defer(gate)  # said now: the task may not look again before the gate opens
        return {"accepted": True, "reason": reason, "state": DEFERRED if gate else DOWNLOADING}

    # -- gates --------------------------------------------------------------------

    def gate_closed(self) -> str:
        """Why no download or switch may start now ("" when it may)."""
        link = self.device.link
        if link is None:
            return "no link"
        if link.state.state != "online":
            return "link " + link.state.state
        depth = self.store.depth()[0]
        if depth > self.settings["backlog_max"]:
            return "outbox backlog %d > %d" % (depth, self.settings["backlog_max"])
        return ""

    async def _defer(self, reason: str) -> None:
        self.channel.cancel()
        if self.state != DEFERRED or self._reason_kind(reason) != self._reason_kind(self.deferred):
            offer = self._offer() or {}
            self.counters["deferred"] += 1
            await self.event(DEFERRED, offer.get("bundle"), offer.get("version"), reason)
        self.state = DEFERRED
        self.deferred = reason

    @staticmethod
    def _reason_kind(reason: str) -> str:
        # "outbox backlog 412 > 200" and "... 398 > 200" are one reason (its figures move every check);
        # so are "link offline" and "link connecting" (an outage's reconnect rounds would repeat it).
        return reason.split(" ", 1)[0]

    # -- the task -------------------------------------------------------------------

    async def run(self) -> None:
        await self._report_last()
        rec = self._record()
        trial = rec.get("trial") if rec else None
        if trial is not None and trial["slot"] == self.booted:
            await self._trial(trial)
        while True:
            busy = await self.step()
            await self.clock.sleep_ms(DOWNLOAD_POLL_MS if busy else self.settings["check_every_ms"])

    async def step(self) -> bool:
        """One look at the download; True while it is moving (look again soon)."""
        offer = self._offer()
        dropped = self.updater().take_dropped() if self._updater is not None else None
        if dropped is not None:  # a download left by a cut could not be repaired: reported, gone
            exc = dropped[1]
            await self._refuse(dropped[0] or {}, exc.reason + ": " + exc.detail)
            return False
        if offer is None:
            self.channel.cancel()
            self.state = IDLE
            return False
        gate = self.gate_closed()
        if gate:
            await self._defer(gate)
            return False
        self.deferred = ""
        updater = self.updater()
        want = updater.want()
        if want is None:
            await self._finish(offer)
            return False
        if self.state != DOWNLOADING:
            self.state = DOWNLOADING
            await self.event(DOWNLOADING, offer.get("bundle"), offer.get("version"), "from byte %d" % want[0])
        got = self.channel.take()
        if got is not None:
            if got[0] == "error":
                await self._refuse(offer, "unavailable: " + got[1])
                return False
            from device.ota.manifest import BundleError  # loaded with the updater

            try:
                stored = updater.chunk(got[0], got[1])
            except BundleError as exc:  # a file error: the download is discarded already
                await self._refuse(offer, exc.reason + ": " + exc.detail)
                return False
            if stored:
                self.counters["chunks"] += 1
            want = updater.want()
            if want is None:
                return True  # finished on the next look (the gates are checked again first)
        self.channel.request(offer["bundle"], want[0], want[1])
        return True

    async def _refuse(self, offer: dict, reason: str) -> None:
        if self._updater is not None:
            self.updater().slots.dl_reset()  # a file error was discarded (slot too) by the updater already
        self.channel.cancel()
        self.state = IDLE
        self.counters["refused"] += 1
        await self.event("refused", offer.get("bundle"), offer.get("version"), reason)

    async def _finish(self, offer: dict) -> None:
        from device.ota.manifest import BundleError
        from device.ota.steps import run_async

        try:
            # In steps, back to the event loop between them: seconds of hashing, a signature check
            # and copying on a board must not stall the control loop. Discards the download itself
            # on a BundleError (a file error, a full flash among them, is one too).
            slot, manifest = await run_async(self.updater().finish_steps())
        except BundleError as exc:
            self.state = IDLE
            self.counters["refused"] += 1
            reason = exc.reason + (": " + exc.detail if exc.detail else "")
            await self.event("refused", offer.get("bundle"), offer.get("version"), reason)
            return
        self.counters["finished"] += 1
        self.state = SWITCHING
        version = manifest.get("version")
        await self.event("staged", offer.get("bundle"), version, "slot " + slot)
        await self.event(SWITCHING, offer.get("bundle"), version, "reset into slot " + slot)
        self.reset("switch")

    async def _trial(self, trial: dict) -> None:
        from device.ota.health import PASS, HealthGate

        self.state = TRIAL
        bundle, version = trial.get("bundle"), trial.get("version")
        await self.event(TRIAL, bundle, version, "slot %s boot %d" % (trial["slot"], trial["boots"]))
        gate = HealthGate(self.device, self.settings["health_ms"], self.settings["require_link"])
        self.gate = gate
        every = self.settings["check_every_ms"]
        look = LINK_LOOK_MS if LINK_LOOK_MS < every else every
        while True:
            verdict = await gate.step(self.clock.now_ms())
            if verdict:
                break
            waited = 0
            while waited < every:  # a short ONLINE spell between two checks still counts
                await self.clock.sleep_ms(look)
                waited += look
                gate.note_link()
        self.gate = None
        rec = self._record()
        if verdict == PASS:
            if rec is not None and rec["trial"] is not None and rec["booted"] == rec["trial"]["slot"]:
                self._write_record(record.confirm(rec))
            self.booted = trial["slot"]
            self.state = IDLE
            await self.event("installed", bundle, version, "passed the health gate")
            self._clear_last()  # reported here, not again after the next boot
            return
        if rec is not None and rec["trial"] is not None:
            self._write_record(record.rollback(rec, verdict))
        self.state = SWITCHING
        await self.event("rolled_back", bundle, version, verdict)
        self._clear_last()
        self.reset("rollback")

    def stats(self) -> dict:
        out: dict = dict(self.counters)
        out["state"] = self.state
        out["version"] = self.version
        out["booted"] = self.booted
        out["channel"] = self.channel.stats()
        return out


def start_ota(device) -> OtaAgent:  # type: ignore[no-untyped-def]
    """Build the agent for ``Device.start``; adds the task ``ota`` to ``device.extra_tasks``."""
    agent = OtaAgent(device, device.env.board["ota"], getattr(device, "ota_reset", None))
    if device.sync is not None:
        agent.attach(device.sync)
    device.ota = agent
    device.extra_tasks.append(("ota", agent.run))
    return agent
