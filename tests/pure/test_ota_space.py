"""A full flash during an OTA update (device/ota/agent.py, updater.py), MicroPython too.

The agent runs on real files whose medium has a byte capacity (``FullFiles``:
a write past it raises OSError 28, ENOSPC, as a full LittleFS does) and on a
real memory store; the device around it is a stand-in with an online link.
The bundle is the signed vector of test_ota_manifest (board host_sim, target
py, 0.2.0). A full flash while downloading, staging or taking the offer is ONE
refusal ``no_space``; the space is given back (no download, no staged slot),
the boot record is untouched, the current image still boots; once space is
freed, the same bundle offered again installs.
"""

import binascii
import hashlib
import json

from device.ota import bootsel, record
from device.ota.agent import DL_FILES, IDLE, SWITCHING, OtaAgent
from device.ota.bundlefmt import encode_head
from device.ota.otafs import OtaFiles
from device.store.memory import MemoryStore
from tests.pure._ota_support import PUB
from tests.pure._tmpdirs import fresh_dir, remove_tree
from tests.pure.test_ota_manifest import _SIG, GOOD

PAYLOAD = b"print('hi')\nX = 1\n"  # the two files GOOD lists: device/app.py, hw/x.py
BUNDLE = encode_head(GOOD, binascii.unhexlify(_SIG["GOOD"])) + PAYLOAD
OFFER = {"bundle": "".join("%02x" % b for b in hashlib.sha256(BUNDLE).digest()), "size": len(BUNDLE)}
OFFER["version"] = "0.2.0"
CHUNK = 100
STEPS_MAX = 60  # far more task steps than a 5-chunk download takes


def used_bytes(files, rel="") -> int:  # type: ignore[no-untyped-def]
    """Bytes in the files under ``rel`` of the root."""
    total = 0
    for name in files.listdir(rel or "."):
        child = rel + "/" + name if rel else name
        total += used_bytes(files, child) if files.is_dir(child) else files.size(child)
    return total


class FullFiles(OtaFiles):
    """Real files on a medium of ``capacity`` bytes (None: unbounded): a write past it fails."""

    capacity = None
    errno = 28  # ENOSPC; another errno models another file error

    def _write(self, f, rel, data) -> None:  # type: ignore[no-untyped-def]
        if self.capacity is not None and used_bytes(self) + len(data) > self.capacity:
            raise OSError(self.errno, "No space left on device")
        super()._write(f, rel, data)


class _Clock:
    def now_ms(self) -> int:
        return 0


class _Env:
    def __init__(self, store) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.clock = _Clock()
        self.board = {"name": "host_sim"}


class _LinkState:
    state = "online"


class _Link:
    state = _LinkState()


class _Device:
    def __init__(self, store) -> None:  # type: ignore[no-untyped-def]
        self.env = _Env(store)
        self.link = _Link()
        self.sync = None
        self.apps: list = []


SETTINGS = {
    "root": "",
    "pubkey_file": "ota_pub.json",
    "max_trial_boots": 3,
    "max_bundle_bytes": 65536,
    "chunk_bytes": CHUNK,
    "backlog_max": 200,
    "request_timeout_ms": 1000,
    "check_every_ms": 1000,
    "health_ms": 1000,
    "require_link": True,
}


class Rig:
    """The agent on ``FullFiles`` in a fresh root holding the public key and a factory boot record."""

    def __init__(self, root: str, store) -> None:  # type: ignore[no-untyped-def]
        self.files = FullFiles(root)
        with open(root + "/ota_pub.json", "w") as f:
            f.write(json.dumps(PUB))
        self.files.makedirs("ota")
        self.files.write_json(bootsel.RECORD, record.fresh("0.1.0"))
        self.record_bytes = self.record_text()
        self.store = store
        self.resets: list = []
        settings = dict(SETTINGS, root=root)
        self.agent = OtaAgent(_Device(store), settings, self.resets.append, self.files)
        self.agent.target = "py"  # the vector's target, on MicroPython too

    def record_text(self) -> bytes:
        f = self.files.open_read(bootsel.RECORD)
        try:
            return f.read()  # type: ignore[no-any-return]
        finally:
            f.close()

    async def events(self, stage: str) -> list:
        records = await self.store.read_outbox(1000)
        return [r.payload for r in records if r.payload.get("stage") == stage]

    async def feed(self, stop_when_ready: bool = False) -> None:
        """Run the task's steps, answering each chunk request, until it settles (or all bytes are in)."""
        agent = self.agent
        for _ in range(STEPS_MAX):
            if stop_when_ready and agent.updater().want() is None:
                return
            busy = await agent.step()
            if not busy:
                return
            want = agent.updater().want()
            if want is not None and agent.channel.waiting():
                head = {"bundle": OFFER["bundle"], "off": want[0], "n": want[1], "total": len(BUNDLE)}
                body = json.dumps(head).encode() + b"\n" + BUNDLE[want[0] : want[0] + want[1]]
                await agent.channel.on_message("ota/chunk", body)
        raise AssertionError("the download did not settle in %d steps" % STEPS_MAX)

    def assert_nothing_left(self) -> None:
        for rel in DL_FILES:
            assert not self.files.exists(rel), rel
        assert self.files.listdir("ota/a") == [] and self.files.listdir("ota/b") == []
        assert self.files.listdir("ota") == ["boot.json"], self.files.listdir("ota")
        assert self.record_text() == self.record_bytes  # the boot record untouched
        assert bootsel.select(self.files, "power")[0] == "factory"  # the current image still boots
        assert self.resets == [] and self.agent.state == IDLE

    async def install(self) -> None:
        """Space freed: the same bundle offered again downloads, stages and switches."""
        self.files.capacity = None
        got = await self.agent.on_offer(OFFER)
        assert got["accepted"] and got["reason"] == "accepted", got
        await self.feed()
        assert self.resets == ["switch"] and self.agent.state == SWITCHING
        assert len(await self.events("staged")) == 1
        assert bootsel.select(self.files, "reset")[:2] == ("a", "ota/a")
        f = self.files.open_read("ota/a/device/app.py")
        try:
            assert f.read() == PAYLOAD[:12]
        finally:
            f.close()
        for rel in DL_FILES:
            assert not self.files.exists(rel), rel


def with_rig(test):  # type: ignore[no-untyped-def]
    async def run() -> None:
        root = fresh_dir("otaspace")
        try:
            store = MemoryStore(budget_bytes=1 << 16)
            await store.open()
            await test(Rig(root, store))
        finally:
            remove_tree(root)

    return run


async def _one_refusal(rig, reason: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):  # the task looks again: nothing is retried, nothing reported twice
        assert not await rig.agent.step()
    refused = await rig.events("refused")
    assert len(refused) == 1, refused
    assert refused[0]["bundle"] == OFFER["bundle"] and refused[0]["reason"].startswith(reason + ": "), refused


@with_rig
async def test_a_full_flash_while_downloading_is_one_refusal_and_the_space_comes_back(rig) -> None:  # type: ignore[no-untyped-def]
    rig.files.capacity = used_bytes(rig.files) + 450  # the offer and a chunk fit, the bundle (~430 bytes) not
    got = await rig.agent.on_offer(OFFER)
    assert got["accepted"], got
    await rig.feed()
    assert rig.agent.counters["chunks"] >= 1  # it failed part way, not at the start
    await _one_refusal(rig, "no_space")
    rig.assert_nothing_left()
    await rig.install()


@with_rig
async def test_a_full_flash_while_staging_is_one_refusal_and_the_slot_is_removed(rig) -> None:  # type: ignore[no-untyped-def]
    assert (await rig.agent.on_offer(OFFER))["accepted"]
    await rig.feed(stop_when_ready=True)
    assert rig.files.size("ota/dl.part") == len(BUNDLE)
    rig.files.capacity = used_bytes(rig.files) + 15  # the first file (12 bytes) fits, the second not
    assert not await rig.agent.step()  # verified, then staging fails
    await _one_refusal(rig, "no_space")
    assert len(await rig.events("staged")) == 0
    rig.assert_nothing_left()
    await rig.install()


@with_rig
async def test_a_full_flash_when_the_offer_comes_refuses_it_at_once(rig) -> None:  # type: ignore[no-untyped-def]
    rig.files.capacity = used_bytes(rig.files) + 20  # not even the download's progress file fits
    got = await rig.agent.on_offer(OFFER)
    assert not got["accepted"] and got["reason"].startswith("no_space: "), got
    assert len(await rig.events("refused")) == 1
    rig.assert_nothing_left()
    await rig.install()


@with_rig
async def test_another_file_error_is_an_io_error_refusal(rig) -> None:  # type: ignore[no-untyped-def]
    assert (await rig.agent.on_offer(OFFER))["accepted"]
    rig.files.errno = 5  # EIO: the medium failed
    rig.files.capacity = used_bytes(rig.files) + 150
    await rig.feed()
    await _one_refusal(rig, "io_error")
    rig.assert_nothing_left()
    rig.files.errno = 28
    await rig.install()
