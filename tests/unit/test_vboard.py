"""Virtual board, flash and HIL pieces: the REPL protocol, the bridge's helpers, manifest diffing."""

from __future__ import annotations

import binascii
import socket
import sys
from pathlib import Path

import pytest

from tools import flash, hil
from tools.mpboard import BoardError, check_port
from tools.vboard import bridge
from tools.vboard.wiring import wiring_for

sys.path.insert(0, str(Path(bridge.__file__).parent / "vm"))
import simmachine
import vbagent


class Serial:
    """The board side of a serial line: scripted input, everything written kept."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.out: list[str] = []
        self.ran: list[tuple[bytes, str]] = []

    def read(self, n: int) -> bytes:
        chunk, self.data = bytes(self.data[:n]), self.data[n:]
        return chunk

    def write(self, text: str) -> None:
        self.out.append(text)

    def run(self, code: bytes, mode: str) -> None:
        self.ran.append((code, mode))

    def repl(self) -> vbagent.Repl:
        return vbagent.Repl(self.read, self.write, self.run, "BANNER\r\n")

    def text(self) -> str:
        return "".join(self.out)


def test_raw_repl_exec_then_friendly_on_ctrl_b() -> None:
    line = Serial(b"print(1)\x04\x02")
    assert line.repl().raw() == "friendly"
    assert line.ran == [(b"print(1)", "raw")]
    assert line.text() == "raw REPL; CTRL-B to exit\r\n>OK>\r\n"


def test_raw_repl_ctrl_c_clears_and_ctrl_d_on_empty_input_soft_resets() -> None:
    line = Serial(b"garbage\x03\x04")
    with pytest.raises(vbagent.SoftReset):
        line.repl().raw()
    assert line.ran == []
    assert line.text().endswith(">OK\r\n")


def test_raw_paste_grants_windows_and_acknowledges_the_end() -> None:
    code = b"x" * (vbagent._WINDOW + 10)
    line = Serial(b"\x05A\x01" + code + b"\x04\x02")
    assert line.repl().raw() == "friendly"
    window = chr(vbagent._WINDOW & 0xFF) + chr(vbagent._WINDOW >> 8)
    assert line.text() == "raw REPL; CTRL-B to exit\r\n>R\x01" + window + "\x01\x04>\r\n"
    assert line.ran == [(code, "raw")]


def test_ctrl_a_without_paste_request_resets_the_raw_repl() -> None:
    line = Serial(b"abc\x01\x02")
    assert line.repl().raw() == "friendly"
    assert line.text().count("raw REPL; CTRL-B to exit") == 2
    assert line.ran == []


def test_friendly_repl_runs_lines_blocks_and_enters_raw_mode() -> None:
    line = Serial(b"1+1\rfor i in range(2):\r  print(i)\r\r\x01")
    assert line.repl().friendly() == "raw"
    assert line.ran == [(b"1+1", "single"), (b"for i in range(2):\n  print(i)\n", "single")]
    assert line.text().startswith("BANNER\r\n>>> 1+1")


def test_end_of_input_ends_the_repl() -> None:
    with pytest.raises(EOFError):
        Serial(b"").repl().raw()


def test_vm_reports_output_then_error_between_eof_markers(capsys: pytest.CaptureFixture[str]) -> None:
    out: list[str] = []
    vm = vbagent.Vm(out.append)
    vm.run(b"x = 6 * 7", "raw")
    vm.run(b"1/0", "raw")
    assert vm.globals["x"] == 42
    assert out == ["\x04", "\x04", "\x04", "\x04"]
    assert "ZeroDivisionError" in capsys.readouterr().out
    with pytest.raises(vbagent.SoftReset):
        vm.run(b"raise SystemExit", "raw")


def test_split_interrupts_and_control_file() -> None:
    assert bridge.split_interrupts(b"\r\x03\r\x01") == [b"\r", None, b"\r\x01"]
    assert bridge.split_interrupts(b"\x03\x03") == [None, None]
    assert bridge.parse_ctl("") == (False, None)
    assert bridge.parse_ctl("up      ") == (True, None)
    assert bridge.parse_ctl("wdt 12345   ") == (True, 12345)
    assert bridge.next_boot(bridge.EXIT_SOFT_RAW) == ("raw", bridge.SOFT)
    assert bridge.next_boot(bridge.EXIT_SOFT) == ("friendly", bridge.SOFT)
    assert bridge.next_boot(1) == ("friendly", bridge.HARD)


def test_simulated_thermistor_reads_back_through_the_board_driver() -> None:
    from hw.mp.thermistor import ThermistorAdc

    spec = {"beta": 3435.0, "r0_ohm": 10000.0, "series_ohm": 4700.0, "thermistor_low": False}
    driver = ThermistorAdc(None, 3435.0, 10000.0, 25.0, 4700.0, False)
    for temp in (-5.0, 17.0, 21.5, 40.0):
        assert driver.celsius_from_raw(simmachine.thermistor_raw(temp, spec)) == pytest.approx(temp, abs=0.05)


def test_wiring_follows_the_thermostat_parts() -> None:
    from device.board import load_board

    board = load_board("tests/data/vboard/thermostat.json")
    wiring = wiring_for(board)
    assert wiring["loads"] == {"4": 2000.0}
    assert list(wiring["thermistors"]) == ["34"]
    assert wiring["name"] == "vb_test" and wiring["chip"] == "esp32"


def test_plan_copies_changed_and_missing_files_and_removes_dropped_ones() -> None:
    local = flash.manifest_of({"a.mpy": b"1", "b.mpy": b"2", "main.py": b"m"})
    board = {"a.mpy": local["a.mpy"], "b.mpy": {"sha256": "0" * 64, "size": 1}, "old.mpy": {}, "manifest.json": {}}
    assert flash.plan(local, board) == (["b.mpy", "main.py"], ["old.mpy"])
    assert flash.plan(local, dict(local)) == ([], [])
    assert flash.parse_manifest("not json") == {}
    assert flash.parse_manifest('{"files": {"a.mpy": {"sha256": "x"}}}') == {"a.mpy": {"sha256": "x"}}


def test_write_calls_batch_small_files_and_split_big_ones() -> None:
    files = [("a", b"x" * 10), ("b", b"y" * 10), ("c", b"z" * 25)]
    calls = flash.write_calls(files, chunk=20)
    written: dict[str, bytes] = {}

    def _s(path: str, b64: str, mode: str) -> None:
        data = binascii.a2b_base64(b64)
        written[path] = (written.get(path, b"") if mode == "ab" else b"") + data

    for code in calls:
        exec(code, {"_s": _s})
    assert written == {"/a": b"x" * 10, "/b": b"y" * 10, "/c": b"z" * 25}
    assert len(calls) == 3  # a+b share one, c's two pieces do not fit with anything else


def test_dirs_for_lists_parents_first() -> None:
    assert flash._dirs_for(["device/core/x.mpy", "hw/mp/y.mpy", "main.py"]) == [
        "device",
        "hw",
        "device/core",
        "hw/mp",
    ]


def test_image_skips_host_only_packages() -> None:
    rels = [p.relative_to(flash.REPO).as_posix() for p in flash.source_files()]
    assert "device/boot.py" in rels and "hw/build.py" in rels
    assert not [r for r in rels if r.startswith(("hw/sim/", "hw/linux/"))]


def test_missing_ports_are_clear_errors() -> None:
    with pytest.raises(BoardError, match="not found") as exc:
        check_port("/dev/ttyNOPE_brickproof")
    assert exc.value.code == 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(BoardError, match="no board at") as exc:
            check_port(f"socket://127.0.0.1:{port}")
    assert exc.value.code == 2


def test_hil_checks_name_what_failed() -> None:
    assert "room=20.50C" in hil.check_sensors("SENSOR room 20.5\n")
    with pytest.raises(hil.StepFailed, match="sensor room read null"):
        hil.check_sensors("SENSOR room null\n")
    with pytest.raises(hil.StepFailed, match="did not follow"):
        hil.check_actuators("SWITCH heater [[false, null], [false, null]]\n")
    with pytest.raises(hil.StepFailed, match="did not boot"):
        hil.check_control("SUMMARY {}\n")
    ok = (
        'HEAP 100 10\nSTATUS {"thermostat": {"temp_c": 17.0, "health": "ok"}}\n'
        'SUMMARY {"task_crashes": 0, "thermostat": {"ticks": 3}}\n'
    )
    assert hil.check_control(ok)["heap_after_boot"] == 100
    with pytest.raises(hil.StepFailed, match="task crash"):
        hil.check_control('HEAP 1 1\nSUMMARY {"task_crashes": 2}\n')
