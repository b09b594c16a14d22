"""Revocation and key rotation reach a real device through the cloud shadow (real mosquitto).

The cloud's ``TokenIssuer`` pushes ``lan.revoked`` / ``lan.key_gen`` as desired state with the
shadow service; the device's link applies them (policy ``cloud_wins``, added by ``attach_device``
for boards with a ``lan`` section) and its verifier refuses the revoked / retired tokens while it
goes on accepting new ones. Every wait is bounded; nothing asserts how long something took.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloud_shim.broker import Mosquitto
from cloud_shim.shadow_service import ShadowService, app_policies
from cloud_shim.tokens import TokenIssuer, lankey_path, new_key
from device.board import load_board
from device.lan.token import AuthError, Verifier
from device.lan.tokenkeys import KEY_GEN, REVOKED, SHADOW_POLICIES
from tests.integration.rig import REPO, Rig, settle

LOCAL = "127.0.0.1"
PATIENCE_S = 60.0


def lan_section(tmp_path: Path, key_file: str) -> dict[str, Any]:
    """The board's validated ``lan`` section (defaults filled in), HTTP on a free loopback port."""
    path = tmp_path / "lan_board.json"
    lan = {"http": {"enabled": True, "port": 0, "bind": LOCAL}, "key_file": key_file}
    path.write_text(json.dumps({"extends": str(REPO / "boards" / "host_sim.json"), "lan": lan}))
    return load_board(str(path))["lan"]  # type: ignore[no-any-return]


async def refusal(verifier: Verifier, token: str) -> str | None:
    try:
        await verifier.authorize("GET", "/v1/state", {"authorization": "Bearer " + token}, b"", "read")
    except AuthError as exc:
        return exc.code
    return None


async def test_revocation_and_rotation_sync_from_the_cloud(tmp_path: Path, broker: Mosquitto, unique_id: str) -> None:
    key = new_key()
    key_file = lankey_path(tmp_path, unique_id)
    key_file.write_text(key.hex() + "\n")
    rig = Rig(tmp_path, broker, unique_id)
    rig.board["lan"] = lan_section(tmp_path, str(key_file))
    try:
        await rig.start()
        assert rig.clock is not None and rig.device is not None
        clock, store = rig.clock, rig.device.env.store
        engine: Any = rig.device.sync
        assert engine.policies[REVOKED] == engine.policies[KEY_GEN] == "cloud_wins"
        verifier = Verifier(rig.device.env, key, unique_id)
        issuer = TokenIssuer(bundle_dir=tmp_path)
        policies = dict(app_policies(["thermostat"]), **SHADOW_POLICIES)
        service = ShadowService(
            LOCAL, broker.port, tmp_path / "cloud.sqlite", wall_ms=clock.wall_ms, client_id="shadow-" + unique_id,
            policies=policies,
        )  # fmt: skip
        with service:
            await settle(rig)
            assert await rig.run_until(lambda: service.reported(unique_id) is not None, PATIENCE_S)
            now_s = (clock.wall_ms() or 0) // 1000
            first = issuer.issue(unique_id, ["read"], days=30, now_s=now_s - 60)
            second = issuer.issue(unique_id, ["read"], days=30, now_s=now_s - 60)
            assert await refusal(verifier, first["token"]) is None

            issuer.revoke(unique_id, first)
            issuer.push(service, unique_id, now_s)
            assert await rig.run_until(lambda: _value(store, REVOKED) == [first["tid"]], PATIENCE_S)
            assert (await store.get_state(REVOKED)).origin == "cloud"
            assert await refusal(verifier, first["token"]) == "revoked"
            assert await refusal(verifier, second["token"]) is None

            issuer.rotate(unique_id)
            issuer.push(service, unique_id, now_s)
            assert await rig.run_until(lambda: _value(store, KEY_GEN) == 1, PATIENCE_S)
            assert await refusal(verifier, second["token"]) == "key_rotated"
            third = issuer.issue(unique_id, ["read"], days=30, now_s=now_s - 60)
            assert await refusal(verifier, third["token"]) is None
            assert await rig.run_until(lambda: service.converged(unique_id), PATIENCE_S)
    finally:
        await rig.stop()
        rig.close()


def _value(store: Any, key: str) -> Any:
    entry = store._state.get(key)  # the RAM cache get_state serves (a sync view for run_until)
    return None if entry is None else entry.value
