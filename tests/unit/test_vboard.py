"""Virtual board, flash and HIL pieces: the REPL protocol, the bridge's helpers, manifest diffing."""

from __future__ import annotations

import binascii
import hashlib
import io
import json
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


def test_esp32_generic_wiring_has_every_sensor_and_active_low_loads() -> None:
    from device.board import load_board

    wiring = wiring_for(load_board("boards/esp32_generic.json"))
    assert wiring["loads"] == {"26": 2000.0, "27": -1500.0}
    assert sorted(wiring["active_low"]) == ["26", "27"]
    assert wiring["onewire"] == ["4"] and list(wiring["thermistors"]) == ["34"]
    simmachine._wiring = wiring
    try:
        simmachine._levels.clear()
        room = simmachine.Room({}, io.BytesIO())
        assert room.power_w() == 0.0  # relays never driven: off
        simmachine._levels.update({26: 0, 27: 1})  # heater line low: energised; cooler high: off
        assert room.power_w() == 2000.0
    finally:
        simmachine._wiring = {}
        simmachine._levels.clear()


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


class FlashBoard:
    """A board for ``flash.flash``: a dict filesystem, the flash tool's board code run on CPython."""

    def __init__(self, files: dict[str, bytes], full_at: str = "") -> None:
        self.files = dict(files)
        self.full_at = full_at  # writing this path fails with ENOSPC
        self.manifests: list[dict[str, object]] = []  # every manifest written, in order

    def __call__(self, port: str, timeout_s: float) -> FlashBoard:
        return self

    def __enter__(self) -> FlashBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _s(self, path: str, b64: str, mode: str) -> None:
        if path == "/" + self.full_at:
            raise BoardError(1, "board error: OSError: 28")
        data = binascii.a2b_base64(b64)
        key = path.lstrip("/")
        self.files[key] = (self.files.get(key, b"") if mode == "ab" else b"") + data
        if key == flash.MANIFEST:
            self.manifests.append(json.loads(self.files[key])["files"])

    def run(self, code: str, timeout_s: float | None = None) -> str:
        if code == flash._READ_MANIFEST:
            return self.files.get(flash.MANIFEST, b"{}").decode()
        if "statvfs" in code:
            return str(1 << 20)
        if "_s(" in code and "def _s" not in code:
            exec(code, {"_s": self._s})
        if "_h(_p)" in code:
            paths = eval(code.split("for _p in ", 1)[1].split(":", 1)[0])
            return "\n".join(f"{p} {hashlib.sha256(self.files.get(p, b'')).hexdigest()}" for p in paths)
        return ""

    def reset_and_run(self) -> None:
        return None


def test_flash_drops_changing_files_from_the_manifest_before_writing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    old = {"a.mpy": b"a", "main.py": b"old main"}
    new = {"a.mpy": b"a", "main.py": b"new main"}
    files = dict(old)
    files[flash.MANIFEST] = json.dumps({"files": flash.manifest_of(old)}).encode()
    board = FlashBoard(files, full_at="main.py")
    monkeypatch.setattr(flash, "Board", board)
    monkeypatch.setattr(flash, "build_image", lambda *args, **kwargs: dict(new))
    with pytest.raises(BoardError, match=r"filesystem full while writing /main\.py") as exc:
        flash.flash("b.json", "socket://x:1", Path("."))
    assert exc.value.code == 1
    # main.py left the manifest before it was touched; a.mpy, unchanged, is still current.
    assert board.manifests == [{"a.mpy": flash.manifest_of(old)["a.mpy"]}]

    board.full_at = ""
    figures = flash.flash("b.json", "socket://x:1", Path("."))
    assert figures["copy"] == ["main.py"] and board.files["main.py"] == b"new main"
    assert board.manifests[-1] == flash.manifest_of(new)


def test_heapmap_orders_modules_after_what_they_import() -> None:
    from tools.vboard import heapmap

    order = heapmap.dependency_order(["device.boot", "device.clock", "device.compat", "device.store.log", "asyncio"])
    assert order[0] == "asyncio"
    assert order.index("device.compat") < order.index("device.clock") < order.index("device.boot")
    assert "device.store.base" in heapmap.module_imports("device.store.log")
    assert "device.store.logrecover" not in heapmap.module_imports("device.store.log")  # loaded on first use
    assert heapmap.parse_qstr("qstr pool: n_pool=2, n_qstr=9, n_str_data_bytes=80, n_total_bytes=300\n") == {
        "n_pool": 2,
        "n_qstr": 9,
        "n_str_data_bytes": 80,
        "n_total_bytes": 300,
    }


@pytest.mark.skipif(
    not Path(sys.executable).with_name("micropython").exists(), reason="needs the micropython binary beside python"
)
def test_heapmap_measures_a_board_boot_under_micropython() -> None:
    from tools.vboard import heapmap

    fig = heapmap.measure("boards/host_mcu_sim.json")
    assert fig["board"] == "host_mcu_sim"
    assert 20000 < fig["heap_after_boot"] < fig["qstr"]["n_total_bytes"] + 200000
    assert fig["modules"]["device.apps.thermostat"] > 0 and "device.store.memory" in fig["modules"]
    assert "device.core.backoff" not in fig["modules"]  # the supervisor loads it at a task's first crash
