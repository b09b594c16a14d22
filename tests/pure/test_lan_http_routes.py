"""The LAN API's routing table and body checks (pytest and MicroPython alike)."""

from device.lan.httpparse import HttpError
from device.lan.routes import ROUTES, json_object, match_route, number
from tests.pure._check import raises


def test_every_route_is_found_with_its_scope() -> None:
    assert match_route("GET", "/v1/info")[0][3] is None
    assert match_route("GET", "/v1/diagnostics")[0][3] == "admin"
    route, segment = match_route("POST", "/v1/bed/side/left")
    assert route[2] == "bed_side" and route[3] == "control" and segment == "left"
    route, segment = match_route("POST", "/v1/commands/bed.stop")
    assert route[2] == "command" and segment == "bed.stop"
    scopes = {}
    for method, path, _name, scope in ROUTES:
        scopes[scope] = scopes.get(scope, 0) + 1
        assert method in ("GET", "POST") and path.startswith("/v1/")
    assert scopes == {None: 1, "read": 4, "admin": 1, "control": 4}


def test_unknown_paths_are_404_and_other_methods_405_with_allow() -> None:
    for path in ("/", "/v1", "/v1/info/", "/v1/bed/side/", "/v1/bed/side/a/b", "/v1/commands/", "/V1/INFO"):
        exc = raises(HttpError, match_route, "GET", path)
        assert exc.status in (404, 405), path
    assert raises(HttpError, match_route, "GET", "/v1/nope").status == 404
    exc = raises(HttpError, match_route, "PUT", "/v1/thermostat")
    assert exc.status == 405 and exc.headers == {"Allow": "POST"}
    assert raises(HttpError, match_route, "GET", "/v1/bed/side/left").status == 405


def test_json_bodies() -> None:
    assert json_object(b'{"a": 1}') == {"a": 1}
    assert json_object(b"", empty_ok=True) == {}
    for bad in (b"", b"[]", b"1", b"{", b"\xff", b'"x"'):
        exc = raises(HttpError, json_object, bad)
        assert exc.status == 400 and exc.code == "bad_json"


def test_numbers_are_finite_and_not_bools() -> None:
    assert number(21, "x") == 21.0 and number(-0.5, "x") == -0.5
    for bad in (True, False, None, "21", [21], float("nan"), float("inf"), float("-inf")):
        exc = raises(HttpError, number, bad, "setpoint_c")
        assert exc.status == 400 and "setpoint_c" in exc.message
