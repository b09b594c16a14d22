"""Every LAN API endpoint and error status, over real sockets, against a real running device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.tokens import issue, sign_headers
from tests.integration.lan_rig import (
    DEVICE_ID,
    LanDevice,
    Reply,
    exchange,
    lan_device,
    provision,
    request,
    signed,
    wait_until,
)

SCOPED = [
    ("GET", "/v1/state"),
    ("GET", "/v1/status"),
    ("GET", "/v1/receipts"),
    ("GET", "/v1/diagnostics"),
    ("POST", "/v1/thermostat"),
    ("POST", "/v1/bed/side/left"),
    ("POST", "/v1/bed/base"),
    ("GET", "/v1/camera/snapshot"),
    ("POST", "/v1/commands/ping"),
]


class Owner:
    """A provisioned device and the owner's tokens (issued as the cloud or ``brickproof token`` does)."""

    def __init__(self, dev: LanDevice, key: bytes) -> None:
        self.dev = dev
        self.port = dev.port
        self.full = issue(key, DEVICE_ID, ["read", "control", "admin"])
        self.reader = issue(key, DEVICE_ID, ["read"])

    def __call__(self, method: str, target: str, body: Any = None, issued: dict | None = None) -> Reply:
        return signed(self.port, issued or self.full, method, target, body)

    def app(self, name: str) -> Any:
        return self.dev.app(name)


@contextmanager
def owned(tmp_path: Path, base: str = "host_sim.json") -> Iterator[Owner]:
    key_file, key = provision(tmp_path)
    with lan_device(tmp_path, base=base, lan={"key_file": key_file}) as dev:
        yield Owner(dev, key)


@pytest.fixture
def thermo(tmp_path: Path) -> Iterator[LanDevice]:
    with lan_device(tmp_path) as dev:
        yield dev


def test_info_is_public_and_tells_what_a_client_signs_with(thermo: LanDevice) -> None:
    reply = request(thermo.port, "GET", "/v1/info")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert reply.headers["connection"] == "close"
    info = reply.json()
    assert info["device"] == "lan-dev" and info["apps"] == ["thermostat"]
    assert info["provisioned"] is False
    assert info["boot"] == thermo.device.env.store.boot_id
    assert isinstance(info["now_ms"], int) and info["now_ms"] >= 0


@pytest.mark.parametrize(("method", "path"), SCOPED)
def test_without_a_key_everything_but_info_is_refused_and_says_why(thermo: LanDevice, method: str, path: str) -> None:
    reply = request(thermo.port, method, path, body={} if method == "POST" else None)
    assert reply.status == 403
    assert reply.json()["error"] == "not_provisioned" and "provision" in reply.json()["message"]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Owner]:
    with owned(tmp_path) as owner:
        yield owner


def test_a_provisioned_device_says_so_and_names_itself(home: Owner) -> None:
    info = request(home.port, "GET", "/v1/info").json()
    assert info["provisioned"] is True and info["device"] == DEVICE_ID


def test_tokens_are_checked_for_the_route_scope(home: Owner) -> None:
    # a read token reads, but neither controls nor sees diagnostics
    assert home("GET", "/v1/state", issued=home.reader).status == 200
    for method, target in (("POST", "/v1/thermostat"), ("GET", "/v1/diagnostics")):
        reply = home(method, target, {"mode": "heat"} if method == "POST" else None, issued=home.reader)
        assert reply.status == 403 and reply.json()["error"] == "wrong_scope", reply
    # no token, a forged one, an unsigned control request
    assert request(home.port, "GET", "/v1/state").json()["error"] == "missing_token"
    forged = dict(home.full, token=home.full["token"][:-4] + "AAAA")
    assert home("GET", "/v1/state", issued=forged).status == 401
    reply = signed(home.port, home.full, "POST", "/v1/thermostat", {"mode": "heat"}, sign=False)
    assert reply.status == 401 and reply.json()["error"] == "unsigned"
    auth = home.dev.sync(home.dev.server.stats)["auth"]
    assert auth["refused"] >= 5 and auth["allowed"] >= 1 and "verifier" in auth


def test_a_replayed_control_request_is_refused(home: Owner) -> None:
    info = request(home.port, "GET", "/v1/info").json()
    body = b'{"mode": "heat"}'
    headers = sign_headers(home.full, "POST", "/v1/thermostat", body, boot=info["boot"], ts_ms=info["now_ms"])
    assert request(home.port, "POST", "/v1/thermostat", body, headers).status == 200
    reply = request(home.port, "POST", "/v1/thermostat", body, headers)
    assert reply.status == 401 and reply.json()["error"] == "replayed"


def test_read_endpoints(home: Owner) -> None:
    state = home("GET", "/v1/state").json()["state"]
    assert state["thermostat.mode"]["value"] in ("off", "heat", "cool", "auto")
    assert state["thermostat.setpoint_c"]["origin"] in ("local", "schedule")
    assert not [key for key in state if key.startswith("_") or key.startswith("lan.")]
    status = home("GET", "/v1/status").json()
    assert "thermostat" in status and status["health"] in ("local_only", "fault", "cloud_ok")
    assert home("GET", "/v1/receipts").json() == {"receipts": [], "link": False}
    diag = home("GET", "/v1/diagnostics").json()
    assert diag["lan"]["requests"] >= 3 and diag["lan"]["crashes"] == 0
    assert diag["lan"]["by_status"]["200"] >= 3
    assert "thermostat" in diag["supervisor"]["tasks"] and "lan" in diag["supervisor"]["tasks"]
    assert "appended" in diag["store"]["counters"]
    assert diag["link"] is None
    key_hex = Path(home.dev.device.env.board["lan"]["key_file"]).read_text().strip()
    assert key_hex not in json.dumps(diag)  # the key is in no answer


def _state(dev: LanDevice, key: str) -> Any:
    return dev.call(dev.device.env.store.get_state(key))


def test_thermostat_writes_the_keys_the_app_reads(home: Owner) -> None:
    reply = home("POST", "/v1/thermostat", {"mode": "cool", "cool_setpoint_c": 24.5})
    assert reply.status == 200, reply
    assert reply.json()["applied"] == {"mode": "cool", "cool_setpoint_c": 24.5}
    entry = _state(home.dev, "thermostat.cool_setpoint_c")
    assert entry.value == 24.5 and entry.origin == "lan"
    assert _state(home.dev, "thermostat.mode").origin == "lan"
    app = home.app("thermostat")
    # the running app picks it up on its next tick (bounded wait, not a timing assertion)
    assert wait_until(lambda: home.dev.sync(app.status)["mode"] == "cool", timeout=15)
    assert home.dev.sync(app.status)["cool_setpoint_c"] == 24.5


def test_thermostat_clamps_like_the_app_and_refuses_nonsense(home: Owner) -> None:
    settings = home.app("thermostat").settings
    reply = home("POST", "/v1/thermostat", {"setpoint_c": 500})
    assert reply.status == 200
    assert reply.json()["applied"] == {"setpoint_c": settings["setpoint_max_c"]}
    assert any("clamped" in note for note in reply.json()["notes"])
    assert _state(home.dev, "thermostat.setpoint_c").value == settings["setpoint_max_c"]
    bad: list = [
        {"mode": "turbo"},
        {"setpoint_c": "hot"},
        {"setpoint_c": True},
        {"setpoint_c": None},
        {"fan": "on"},
        {},
        [1, 2],
        b"{",
        b"\xff\xfe",
        b"NaN",
        b'{"setpoint_c": NaN}',
    ]
    for body in bad:
        reply = home("POST", "/v1/thermostat", body)
        assert reply.status == 400, (body, reply)
        assert reply.json()["error"] in ("bad_value", "bad_json")
    assert _state(home.dev, "thermostat.setpoint_c").value == settings["setpoint_max_c"]  # untouched by the refusals


def test_routing_errors(home: Owner) -> None:
    reply = home("GET", "/v1/nothing")
    assert reply.status == 404 and reply.json()["error"] == "not_found"
    reply = home("DELETE", "/v1/state")
    assert reply.status == 405 and reply.headers["allow"] == "GET"
    assert home("POST", "/v1/bed/side/left", {"setpoint_c": 30}).json()["error"] == "no_app"
    assert home("GET", "/v1/camera/snapshot").status == 404
    reply = home("POST", "/v1/commands/nope", {})
    assert reply.status == 404 and reply.json()["error"] == "unknown_command"


def test_parser_statuses_over_the_wire(thermo: LanDevice) -> None:
    port = thermo.port
    cases = [
        (b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: d\r\n\r\n", 414),
        (b"GET /v1/info HTTP/1.1\r\nHost: d\r\nX: " + b"v" * 3000 + b"\r\n\r\n", 431),
        (b"POST /v1/thermostat HTTP/1.1\r\nHost: d\r\nContent-Length: 5000\r\n\r\n", 413),
        (b"POST /v1/thermostat HTTP/1.1\r\nHost: d\r\n\r\n", 411),
        (b"POST /v1/thermostat HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
        (b"GET /v1/info HTTP/2.0\r\nHost: d\r\n\r\n", 505),
        (b"GET /v1/info HTTP/1.1\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n", 400),  # TLS hello
    ]
    for data, status in cases:
        reply = exchange(port, data)
        assert reply.status == status, (data[:40], reply)
        assert reply.json()["error"] and reply.json()["message"]
    stats = thermo.sync(thermo.server.stats)
    assert stats["bad_requests"] >= len(cases) and stats["crashes"] == 0


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Owner]:
    with owned(tmp_path, base="host_bed_sim.json") as owner:
        yield owner


def test_bed_side_goes_through_the_envelope(bed: Owner) -> None:
    app = bed.app("bed")
    reply = bed("POST", "/v1/bed/side/left", {"setpoint_c": 30})
    assert reply.status == 200, reply
    assert reply.json()["status"] == "ok" and reply.json()["value"] == 30
    entry = _state(bed.dev, "bed.left.setpoint_c")
    assert entry.value == 30 and entry.origin == "lan"
    reply = bed("POST", "/v1/bed/side/right", {"setpoint_c": 99})
    assert reply.status == 200 and reply.json()["status"] == "limited"
    assert reply.json()["value"] == app.settings["max_c"]
    assert bed("POST", "/v1/bed/side/middle", {"setpoint_c": 30}).status == 404
    for body in ({"setpoint_c": "warm"}, {}, {"setpoint_c": 30, "x": 1}):
        assert bed("POST", "/v1/bed/side/left", body).status == 400


def test_bed_base_and_stop(bed: Owner) -> None:
    reply = bed("POST", "/v1/bed/base", {"section": "head", "position": 40})
    assert reply.status == 200, reply
    assert reply.json()["status"] in ("ok", "limited")
    assert _state(bed.dev, "bed.base.head").origin == "lan"
    reply = bed("POST", "/v1/bed/base", {"stop": True})
    assert reply.status == 200 and reply.json()["status"] == "ok"
    for body in ({"section": "tail", "position": 1}, {"section": "head"}, {"stop": False}, {}):
        assert bed("POST", "/v1/bed/base", body).status == 400, body


def test_commands_use_the_apps_handlers(bed: Owner) -> None:
    reply = bed("POST", "/v1/commands/bed.set_temp", {"side": "left", "setpoint_c": 28})
    assert reply.status == 200, reply
    body = reply.json()
    assert body["name"] == "bed.set_temp" and body["status"] == "ok"
    assert body["result"]["value"] == 28
    reply = bed("POST", "/v1/commands/bed.stop", b"")
    assert reply.status == 200 and reply.json()["result"]["status"] == "ok"
    assert bed("POST", "/v1/commands/bed.stop", b"[]").status == 400


def test_camera_snapshot_is_a_pgm(tmp_path: Path) -> None:
    with owned(tmp_path, base="host_camera_sim.json") as cam:
        app = cam.app("camera")
        assert wait_until(lambda: cam.dev.sync(app.snapshot) is not None, timeout=15)
        reply = cam("GET", "/v1/camera/snapshot", issued=cam.reader)
        assert reply.status == 200 and reply.headers["content-type"] == "image/x-portable-graymap"
        width, height = app.width, app.height
        head = b"P5\n%d %d\n255\n" % (width, height)
        assert reply.body.startswith(head) and len(reply.body) == len(head) + width * height
        assert int(reply.headers["x-frame-ms"]) >= 0


def test_a_peer_guessing_tokens_is_rate_limited_with_retry_after(home: Owner) -> None:
    forged = dict(home.full, token=home.full["token"][:-4] + "AAAA")
    statuses = []
    for _ in range(60):  # bounded: the limiter allows a burst of about 20 failures
        reply = home("GET", "/v1/state", issued=forged)
        statuses.append(reply.status)
        if reply.status == 429:
            break
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert reply.json()["error"] == "rate_limited" and int(reply.headers["retry-after"]) >= 1
    assert request(home.port, "GET", "/v1/info").status == 200  # the public endpoint still answers
