"""What the OTA integration tests share: keys, bundles, the cloud side, the host build, an in-process rig.

* ``Keys``/``make_bundles``: a signing key (``tools.otakey``) and bundles made
  with ``tools.bundle`` for the board ``host_ota_sim`` (target py): newer
  versions of the repo's code, one that crashes on boot, one whose thermostat
  crashes (fails the health gate), one signed by another key.
* ``OtaCloud``: the OTA service, the command issuer and a watcher of the
  device's ``{"kind": "ota"}`` event records, on a real mosquitto.
* ``HostBoot``: ``brickproof boot --root DIR -- brickproof run ...`` as a
  subprocess (its own process group, stopped at the end).
* ``OtaRig``: the in-process rig of ``rig.py`` (FaultProxy, fake DNS) on the
  ``host_ota_sim`` board with a reset callback: gates and refusals.

Every wait is bounded by a generous timeout; nothing asserts how long something took.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_shim.broker import Mosquitto
from cloud_shim.commands import CommandIssuer
from cloud_shim.ota_service import OtaService
from cloud_shim.service_client import ServiceClient
from device.board import load_board
from device.boot import Device, build_env
from device.ota.bundlefmt import MAGIC
from device.ota.otafs import OtaFiles
from tests.integration.rig import FAST_LINK, REPO, Rig

BOARD = REPO / "boards" / "host_ota_sim.json"
LOCAL = "127.0.0.1"
PATIENCE_S = 120.0
FINAL = ("installed", "rolled_back")


def wait_for(predicate: Callable[[], bool], timeout_s: float = PATIENCE_S, step_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


# -- keys and bundles ----------------------------------------------------------------------


class Keys:
    def __init__(self, directory: Path) -> None:
        from tools import otakey

        self.pem = otakey.make_or_load(directory)
        self.pub = directory / otakey.PUBLIC_KEY


def _tree(dst: Path, patches: dict[str, tuple[str, str]]) -> Path:
    """A copy of the repo's device/ and hw/ with ``{path: (old, new)}`` text replaced (once each)."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("device", "hw"):
        shutil.copytree(REPO / package, dst / package, ignore=ignore)
    for rel, (old, new) in patches.items():
        path = dst / rel
        text = path.read_text()
        assert text.count(old) == 1, (rel, old)
        path.write_text(text.replace(old, new))
    return dst


CRASH_ON_BOOT = {  # after the store is open: its writer thread must not keep the crashed process alive
    "device/boot.py": (
        "        await self.env.store.open()\n",
        '        await self.env.store.open()\n        raise RuntimeError("this image crashes on boot")\n',
    )
}
UNHEALTHY = {
    "device/apps/thermostat.py": (
        "    async def run(self) -> None:\n",
        '    async def run(self) -> None:\n        raise RuntimeError("this image\'s thermostat crashes")\n',
    )
}


def make_bundles(directory: Path, keys: Keys) -> dict[str, dict[str, Any]]:
    """name -> ``build_bundle`` figures (``path``, ``sha256``, ``version``, ``bytes``)."""
    from tools import otakey
    from tools.bundle import build_bundle

    other = otakey.make_or_load(directory / "other-key")
    out: dict[str, dict[str, Any]] = {}
    for name, version, key, patches in (
        ("v020", "0.2.0", keys.pem, None),
        ("v030", "0.3.0", keys.pem, None),
        ("v010", "0.1.0", keys.pem, None),
        ("v000", "0.0.9", keys.pem, None),
        ("crash", "0.2.0", keys.pem, CRASH_ON_BOOT),
        ("unhealthy", "0.2.0", keys.pem, UNHEALTHY),
        ("untrusted", "0.2.0", other, None),
    ):
        src = _tree(directory / ("src-" + name), patches) if patches else None
        out[name] = build_bundle(str(BOARD), version, key, directory / (name + ".bpota"), "py", src)
    out["wrong_board"] = build_bundle("host_sim", "0.2.0", keys.pem, directory / "wrong_board.bpota", "py")
    out["bad_signature"] = _flip_signature(out["v020"], directory / "bad_signature.bpota")
    return out


def _flip_signature(figures: dict[str, Any], path: Path) -> dict[str, Any]:
    """A copy of a bundle with one bit of its signature flipped (a forged or damaged signature)."""
    data = bytearray(Path(figures["path"]).read_bytes())
    at = len(MAGIC) + 4 + int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")  # the signature's first byte
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return dict(figures, path=str(path), sha256=hashlib.sha256(bytes(data)).hexdigest())


# -- the cloud side --------------------------------------------------------------------------


class OtaCloud:
    """The OTA service, a command issuer and the device's OTA events, on ``broker``."""

    def __init__(self, broker: Mosquitto, device_id: str, wall_ms: Callable[[], int | None] | None = None) -> None:
        self.device_id = device_id
        self.events: list[dict[str, Any]] = []
        self.status = ""  # the device's retained status: "online" / "offline"
        self._seen: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self._closers: list[Callable[[], None]] = []
        try:
            self.watch = ServiceClient(
                LOCAL,
                broker.port,
                "ota-watch-" + device_id,
                [("bp/%s/out/event" % device_id, 1), ("bp/%s/status" % device_id, 1)],
                self._on_event,
            )
            self.watch.start()
            self._closers.append(self.watch.stop)
            self.service = OtaService(LOCAL, broker.port, client_id="ota-svc-" + device_id).start()
            self._closers.append(self.service.stop)
            kwargs: dict[str, Any] = {"client_id": "ota-cmd-" + device_id}
            if wall_ms is not None:
                kwargs["wall_ms"] = wall_ms
            self.issuer = CommandIssuer(LOCAL, broker.port, **kwargs).start()
            self._closers.append(self.issuer.stop)
        except BaseException:
            self.close()
            raise

    def _on_event(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/status"):
            self.status = payload.decode(errors="replace")
            return
        envelope = json.loads(payload)
        body = envelope.get("p")
        if not isinstance(body, dict) or body.get("kind") != "ota":
            return
        with self._lock:
            key = (envelope["boot"], envelope["seq"])
            if key not in self._seen:  # a QoS 1 redelivery is one event
                self._seen.add(key)
                self.events.append(body)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    def offer(self, figures: dict[str, Any], **override: Any) -> str:
        """Offer a bundle (``make_bundles`` figures); ``override`` replaces offer fields (a forged size, a sha)."""
        if not override:
            return self.service.offer(self.issuer, self.device_id, figures["path"])
        self.service.add(figures["path"])
        args = {"bundle": figures["sha256"], "size": figures["bytes"], "version": figures["version"]}
        args.update(override)
        return self.issuer.issue(self.device_id, "ota_update", args, ttl_ms=600_000)

    def stages(self, bundle: str | None = None) -> list[str]:
        with self._lock:
            return [e["stage"] for e in self.events if bundle is None or e.get("bundle") == bundle]

    def find(self, stage: str, bundle: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["stage"] == stage and (bundle is None or e.get("bundle") == bundle)]

    def done(self, bundle: str) -> bool:
        return any(s in FINAL for s in self.stages(bundle))


# -- the host build: brickproof boot -----------------------------------------------------------


def write_board(path: Path, pub: Path, ota: dict[str, Any] | None = None) -> Path:
    """A board extending host_ota_sim (same name: the bundles are for it) with a fast link."""
    settings = {"pubkey_file": str(pub), "health_ms": 8000}
    settings.update(ota or {})
    board = {"extends": str(BOARD), "ota": settings, "link": dict(FAST_LINK)}
    path.write_text(json.dumps(board))
    return path


class HostBoot:
    """``brickproof boot`` in a subprocess; ``stop()`` ends it (and its child) for good."""

    def __init__(self, tmp: Path, board: Path, port: int, device_id: str, for_s: int = 600, max_boots: int = 8) -> None:
        self.root = tmp / "root"
        self.log_path = tmp / "boot.log"
        cmd = [sys.executable, "-m", "tools.cli", "boot", "--root", str(self.root), "--max-boots", str(max_boots)]
        cmd += ["--", "--board", str(board), "--for", str(for_s), "--speed", "5", "--quiet"]
        cmd += ["--broker", "mqtt://%s:%d" % (LOCAL, port), "--device-id", device_id]
        cmd += ["--store", str(tmp / "store.sqlite")]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def boots(self) -> list[str]:
        """The slot of each boot so far (from the ``ota boot=N slot=S`` lines)."""
        return [line.split("slot=")[1].split()[0] for line in self.log().splitlines() if line.startswith("ota boot=")]

    def record(self) -> dict[str, Any] | None:
        return OtaFiles(str(self.root)).read_json("ota/boot.json")  # type: ignore[no-any-return]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self._log.close()
        return self.proc.returncode


# -- in process ------------------------------------------------------------------------------------


class OtaRig(Rig):
    """``rig.Rig`` (thermostat, producer, FaultProxy, fake DNS) on the host_ota_sim board; resets are recorded."""

    def __init__(self, tmp: Path, broker: Mosquitto, device_id: str, pub: Path, ota: dict[str, Any]) -> None:
        super().__init__(tmp, broker, device_id)
        ota_board = load_board(str(BOARD))
        self.board["name"] = ota_board["name"]
        self.board["ota"] = dict(ota_board["ota"], root=str(tmp / "root"), pubkey_file=str(pub), **ota)
        self.resets: list[str] = []

    def _reset(self, reason: str) -> None:
        self.resets.append(reason)

    async def start(self) -> None:
        env, world = build_env(self.board, 5.0, with_link=True)
        self.clock = env.clock
        self.device = Device(env, self.app_settings, world)
        self.device.ota_reset = self._reset
        self.device.attach_link(self.device_id)
        await self.device.start()
        self.device.supervisor.spawn("producer", self._produce)
        self.device.supervisor.spawn("tick_watch", self._watch_ticks)

    @property
    def agent(self) -> Any:
        assert self.device is not None
        return self.device.ota
