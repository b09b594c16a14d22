"""The OTA agent's boot path stays light (device/ota/agent.py): the verify and staging code loads at the first offer.

A fresh interpreter boots the host_ota_sim device (memory store, its own root)
and runs it for a simulated minute: the signature, manifest, bundle, slot and
updater modules are not imported. The first offer imports them; a download
left on the flash by an earlier boot imports them at the task's first look.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools.otakey import make_or_load

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["device.ota.bundlefmt", "device.ota.ecdsa", "device.ota.manifest", "device.ota.slots", "device.ota.updater"]

SCRIPT = """
import asyncio, json, sys
from device.board import load_board
from device.boot import Device, build_env
from device.config import configure_apps

HEAVY = %(heavy)r

def loaded():
    return [m for m in HEAVY if m in sys.modules]

async def main():
    board = load_board(%(board)r)
    board["storage"] = {"backend": "memory", "budget_bytes": 262144, "fsync": False}
    board["ota"] = dict(board["ota"], root=%(root)r)
    env, world = build_env(board, 0.0)
    device = Device(env, configure_apps(board, ["thermostat"]), world)
    device.ota_reset = lambda reason: None
    await device.start()
    await env.clock.run_until(env.clock.now_ms() + 60000)
    out = {"booted": loaded(), "state": device.ota.state}
    got = await device.ota.on_offer({"bundle": "ab" * 32, "size": 1000, "version": "9.0.0"})
    out["offer"] = got["accepted"]
    out["offered"] = loaded()
    await device.stop()
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""


def _boot(root: Path) -> dict:
    code = SCRIPT % {"heavy": HEAVY, "board": str(REPO / "boards/host_ota_sim.json"), "root": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])  # type: ignore[no-any-return]


def test_booting_loads_no_verify_code_and_the_first_offer_does(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_or_load(root)  # ota_pub.json in the device root
    got = _boot(root)
    assert got["booted"] == [] and got["state"] == "idle", got
    assert got["offer"] is True and got["offered"] == HEAVY, got
    # That offer's download is on the flash now: the next boot loads the updater to go on with it.
    again = _boot(root)
    assert again["booted"] == HEAVY and again["state"] in ("deferred", "downloading"), again
