"""``brickproof provision`` writes the LAN key; ``brickproof token`` issues and signs, end to end."""

from __future__ import annotations

import asyncio
import json
import shlex
import stat
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from device.env import Env
from device.lan.token import AuthError, load_verifier
from device.store.memory import MemoryStore
from tools.cli import main
from tools.provision import provision


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def wall_ms(self) -> int | None:
        return None  # an offline device: no NTP


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def verifier_for(bundle: Path, device_id: str, now_ms: int = 42_000) -> Any:
    async def make() -> Any:
        store = MemoryStore()
        await store.open()
        return load_verifier(Env(Clock(now_ms), store, None, None), {"key_file": str(bundle / f"{device_id}.lankey")})

    return asyncio.run(make())


def test_provision_writes_a_private_key_per_device_and_never_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "provision", "--device-id", "th-01", "--device-id", "th-02", "--out", str(tmp_path))
    assert code == 0
    keys = {}
    for device_id in ("th-01", "th-02"):
        path = tmp_path / f"{device_id}.lankey"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text().strip()
        assert len(bytes.fromhex(text)) == 32
        assert text not in out and str(path) in out
        keys[device_id] = text
    assert keys["th-01"] != keys["th-02"]
    # Provisioning again (new certificates) keeps the key: tokens already issued stay valid.
    bundle = provision(tmp_path, ["th-01"])
    assert bundle.device("th-01").lankey == tmp_path / "th-01.lankey"
    assert (tmp_path / "th-01.lankey").read_text().strip() == keys["th-01"]
    assert keys["th-01"] not in repr(bundle)


def test_token_cli_issues_a_token_the_device_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    provision(tmp_path, ["th-01"])
    code, out, _ = run_cli(
        capsys, "token", "--bundle", str(tmp_path), "--device-id", "th-01", "--scope", "read,control", "--days", "30"
    )
    assert code == 0
    issued = json.loads(out)
    assert issued["device"] == "th-01" and issued["scopes"] == ["read", "control"]
    assert issued["exp"] - issued["iat"] == 30 * 86400
    token_file = tmp_path / "th-01.token.json"
    token_file.write_text(out)

    v = verifier_for(tmp_path, "th-01")
    body = '{"setpoint_c": 21.5}'
    code, out, _ = run_cli(
        capsys,
        "token", "sign", "--token", str(token_file), "--method", "post", "--path", "/v1/thermostat",
        "--body", body, "--boot", "1", "--ts", "42000",
    )  # fmt: skip
    assert code == 0
    headers = json.loads(out)
    claims = asyncio.run(v.authorize("POST", "/v1/thermostat", headers, body.encode(), "control"))
    assert claims["tid"] == issued["tid"] and claims["signed"]
    with pytest.raises(AuthError) as refused:
        asyncio.run(v.authorize("POST", "/v1/thermostat", headers, body.encode(), "control"))
    assert refused.value.code == "replayed"

    code, out, _ = run_cli(
        capsys, "token", "sign", "--token", str(token_file), "--path", "/v1/state", "--format", "curl"
    )
    assert code == 0
    words = shlex.split(out)
    assert words == ["-H", "authorization: Bearer " + issued["token"]]


class _InfoHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = json.dumps({"device": "th-01", "boot": 3, "now_ms": 123_000}).encode()
        self.send_response(200 if self.path == "/v1/info" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_token_sign_reads_boot_and_clock_from_the_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    provision(tmp_path, ["th-01"])
    code, out, _ = run_cli(capsys, "token", "--bundle", str(tmp_path), "--device-id", "th-01", "--scope", "control")
    token_file = tmp_path / "t.json"
    token_file.write_text(out)
    server = HTTPServer(("127.0.0.1", 0), _InfoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d" % server.server_address[1]
        code, out, _ = run_cli(
            capsys, "token", "sign", "--token", str(token_file), "--url", url, "--method", "POST", "--path", "/v1/x"
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert code == 0
    headers = json.loads(out)
    assert headers["x-bp-boot"] == "3" and int(headers["x-bp-ts"]) >= 123_000


def test_token_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "token", "--bundle", str(tmp_path), "--device-id", "th-01")
    assert code == 2 and "lankey" in err and "provision" in err and len(err.strip().splitlines()) == 1
    provision(tmp_path, ["th-01"])
    code, _, err = run_cli(capsys, "token", "--bundle", str(tmp_path), "--device-id", "th-01", "--scope", "root")
    assert code == 2 and "unknown scope" in err
    code, _, err = run_cli(capsys, "token", "--device-id", "th-01")
    assert code == 2 and "--bundle" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, _, err = run_cli(capsys, "token", "sign", "--token", str(bad), "--path", "/")
    assert code == 2 and "request_key" in err
