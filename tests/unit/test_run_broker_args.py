"""``brickproof run --broker``: URL parsing and the argument errors (one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.errors import ConfigError
from device.link.build import parse_broker_url
from tools.cli import main

BOARD = "boards/host_sim.json"


def test_broker_urls_give_endpoints() -> None:
    assert parse_broker_url("mqtt://127.0.0.1:1884") == {
        "name": "broker",
        "role": "primary",
        "host": "127.0.0.1",
        "port": 1884,
        "tls": False,
        "addresses": [],
    }
    ep = parse_broker_url("mqtts://iot.example.com/")
    assert (ep["host"], ep["port"], ep["tls"]) == ("iot.example.com", 8883, True)
    assert parse_broker_url("mqtt://broker")["port"] == 1883


@pytest.mark.parametrize(
    "url", ["http://x:1", "mqtt://", "mqtt://host:port", "mqtt://host:0", "mqtt://host:70000", "broker:1883"]
)
def test_bad_broker_urls_name_the_problem(url: str) -> None:
    with pytest.raises(ConfigError, match="broker"):
        parse_broker_url(url)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--broker", "ftp://x"], "expected mqtt://"),
        (["--ca", "ca.pem"], "no such file"),
        (["--device-id", "d1"], "need --broker"),
        (["--broker", "mqtts://localhost:8883"], "needs --ca"),
    ],
)
def test_link_argument_errors_exit_2_with_one_line(
    extra: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["run", "--board", BOARD, "--for", "10", *extra])
    _, err = capsys.readouterr()
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_cert_without_key_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    code = main(["run", "--board", BOARD, "--for", "10", "--broker", "mqtts://h:1", "--ca", str(ca), "--cert", str(ca)])
    _, err = capsys.readouterr()
    assert code == 2 and "--cert" in err


def test_broker_replaces_the_cloud_endpoints_and_keeps_the_lan_broker() -> None:
    import argparse

    from device.board import load_board
    from tools.run import _link_options

    board = load_board(str(Path(__file__).resolve().parents[2] / "boards/host_ha_sim.json"))
    before = [ep for ep in board["link"]["endpoints"] if ep["role"] == "lan"]
    assert before, "host_ha_sim.json should name a LAN broker"
    args = argparse.Namespace(
        broker="mqtt://127.0.0.1:1999", ca=None, cert=None, key=None, client=None, device_id="ha-1"
    )
    _link_options(board, args)
    endpoints = board["link"]["endpoints"]
    assert endpoints[0]["host"] == "127.0.0.1" and endpoints[0]["port"] == 1999
    assert endpoints[0]["role"] == "primary"
    assert endpoints[1:] == before
