"""``brickproof hil``: a hardware-in-the-loop suite run on a flashed board through mpremote.

    brickproof hil --board B --port P [--seconds N] [--timeout S]

Steps, in order; the first failure ends the run, names its step and exits 1
(2 for a bad argument or a port that is not there):

1. ``connect``: soft reset into the raw REPL (fresh heap; ``main.py`` does not run).
2. ``sensors``: build the board's parts from ``/board.json``; every temperature
   sensor answers a plausible value (-40..85 °C).
3. ``actuators``: every switch turns on and off (and its feedback agrees, if it has one).
4. ``control``: after a soft reset, boot the device from ``/board.json`` with no
   network (no link) and run it N seconds: heap after boot (``gc.mem_alloc()``;
   on a virtual board less the ROMFS partition its VM holds in the heap, ``vfs.rom_heap_bytes``),
   no task crash, the thermostat ticked and its sensor stayed healthy.
5. ``state``: write a marker to the durable store, soft reset, read it back.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from tools.mpboard import EXIT_BOARD, Board, BoardError

_PRELUDE = """
import gc, json, sys, time
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
def _board():
    from device import config
    names = [n for n in config.APP_NAMES if n in json.load(open('/board.json')).get('apps', {})]
    board, apps = config.load_checked('/board.json', names)  # as main.py: the flash's stamp when it vouches
    config.release()
    return board, apps
"""

_SENSORS = """
from device.boot import build_env
_env, _ = build_env(_board()[0])
for _n in _env.hw.names():
    _p = _env.hw.get(_n)
    if hasattr(_p, 'read_c'):
        _v = None
        for _i in range(20):
            _v = _p.read_c()
            if _v is not None:
                break
            time.sleep_ms(100)
        print('SENSOR', _n, json.dumps(_v))
"""

_ACTUATORS = """
for _n in _env.hw.names():
    _p = _env.hw.get(_n)
    if hasattr(_p, 'set') and hasattr(_p, 'on'):
        _seen = []
        for _want in (True, False):
            _p.set(_want)
            time.sleep_ms(50)
            _seen.append([_p.on, getattr(_p, 'sensed_on', None)])
        print('SWITCH', _n, json.dumps(_seen))
"""

_CONTROL = """
try:
    import vfs
    _rom = getattr(vfs, 'rom_heap_bytes', 0)
except ImportError:
    _rom = 0
gc.collect()
_base = gc.mem_alloc()
_bd, _apps = _board()
from device.boot import run_device
from device import compat
def _on_boot(d):
    compat.collect_garbage()
    print('HEAP', compat.heap_used(), _base, _rom)
def _on_status(d, s):
    print('STATUS', json.dumps(s))
_sum = asyncio.run(run_device(_bd, _apps, %d, 0.0, _on_status, 1000, _on_boot))
print('SUMMARY', json.dumps(_sum))
"""

_PUT_MARK = """
from device.store import open_store
async def _put():
    s = open_store(_board()[0]['storage'])
    await s.open()
    await s.put_state('hil.marker', %r)
    await s.close()
asyncio.run(_put())
"""

_GET_MARK = """
from device.store import open_store
async def _get():
    s = open_store(_board()[0]['storage'])
    await s.open()
    e = await s.get_state('hil.marker')
    await s.close()
    print('MARK', json.dumps(e.value if e else None))
asyncio.run(_get())
"""


class StepFailed(Exception):
    pass


def _lines(out: str, tag: str) -> list[list[str]]:
    return [line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith(tag + " ")]


def check_sensors(out: str) -> str:
    found = _lines(out, "SENSOR")
    if not found:
        raise StepFailed("the board has no temperature sensor")
    notes = []
    for name, value in found:
        temp = json.loads(value)
        if temp is None or not -40.0 <= temp <= 85.0:
            raise StepFailed(f"sensor {name} read {value}")
        notes.append(f"{name}={temp:.2f}C")
    return " ".join(notes)


def check_actuators(out: str) -> str:
    found = _lines(out, "SWITCH")
    if not found:
        raise StepFailed("the board has no switch to drive")
    for name, value in found:
        (on_cmd, on_fb), (off_cmd, off_fb) = json.loads(value)
        if on_cmd is not True or off_cmd is not False:
            raise StepFailed(f"switch {name} did not follow on/off: {value}")
        if on_fb is False or off_fb is True:
            raise StepFailed(f"switch {name} feedback disagrees: {value}")
    return " ".join(name for name, _ in found) + " on/off"


def check_control(out: str) -> dict[str, Any]:
    heap = [int(x) for x in out.split("HEAP ", 1)[1].splitlines()[0].split()[:3]] if "HEAP " in out else None
    if heap is None:
        raise StepFailed("the device did not boot (no heap report)")
    rom = heap[2] if len(heap) > 2 else 0  # a virtual board's ROMFS partition, held in its heap
    statuses = [json.loads(v[0] if len(v) == 1 else " ".join(v)) for v in _lines(out, "STATUS")]
    summary_lines = [line for line in out.splitlines() if line.startswith("SUMMARY ")]
    if not summary_lines:
        raise StepFailed("the run did not finish")
    summary = json.loads(summary_lines[-1][len("SUMMARY ") :])
    if summary.get("task_crashes"):
        raise StepFailed(f"{summary['task_crashes']} task crash(es)")
    thermo = summary.get("thermostat")
    temps = [s["thermostat"]["temp_c"] for s in statuses if s.get("thermostat", {}).get("temp_c") is not None]
    if thermo is not None:
        if not thermo.get("ticks"):
            raise StepFailed("the thermostat never ticked")
        bad = [s["thermostat"]["health"] for s in statuses if s["thermostat"].get("health") not in ("ok", None)]
        if bad:
            raise StepFailed(f"thermostat health {bad[-1]}")
        if not temps:
            raise StepFailed("the thermostat never read its sensor")
    return {
        "heap_after_boot": heap[0] - rom,
        "heap_before_boot": heap[1] - rom,
        "rom_heap_bytes": rom,
        "temps": temps,
        "summary": summary,
    }


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_suite(port: str, seconds: float, timeout_s: float = 10.0, say=_say) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Run every step; raise ``BoardError(1, "step NAME: ...")`` at the first failure."""
    step = "connect"
    result: dict[str, Any] = {}
    try:
        with Board(port, timeout_s) as board:
            say("hil: connect ok")
            step = "sensors"
            board.run(_PRELUDE)
            say("hil: sensors ok: " + check_sensors(board.run(_SENSORS, 30)))
            step = "actuators"
            say("hil: actuators ok: " + check_actuators(board.run(_ACTUATORS, 30)))
            step = "control"
            board.soft_reset()
            board.run(_PRELUDE)
            out = board.run(_CONTROL % int(seconds * 1000), seconds + 30)
            result = check_control(out)
            temps = result["temps"]
            trend = f"; room {temps[0]:.2f} -> {temps[-1]:.2f} C" if temps else ""
            say(
                f"hil: control ok: {seconds:g} s, heap after boot {result['heap_after_boot']} bytes"
                f" (REPL before boot {result['heap_before_boot']}){trend}"
            )
            if result["rom_heap_bytes"]:
                say(f"hil: ROMFS image held in the VM heap: {result['rom_heap_bytes']} bytes, not counted")
            step = "state"
            token = "hil-%d" % int(time.time() * 1000)
            board.run(_PUT_MARK % token, 30)
            board.soft_reset()
            board.run(_PRELUDE)
            got = board.run(_GET_MARK, 30)
            if f'MARK "{token}"' not in got:
                raise StepFailed(f"state did not survive a soft reset (wrote {token!r}, read {got.strip()!r})")
            say("hil: state ok: survived a soft reset")
            board.reset_and_run()
    except StepFailed as exc:
        raise BoardError(EXIT_BOARD, f"step {step}: {exc}") from None
    except BoardError as exc:
        if step == "connect":
            raise
        raise BoardError(exc.code, f"step {step}: {exc}") from None
    return result


def add_parser(sub: Any) -> None:
    p = sub.add_parser("hil", help="run the hardware-in-the-loop suite on a flashed board")
    p.add_argument("--board", required=True, help="board profile the board was flashed with (for the report)")
    p.add_argument("--port", required=True, help="serial device or socket://HOST:PORT")
    p.add_argument("--seconds", type=float, default=10.0, help="control run length (default 10)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the board to answer (default 10)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        sys.stderr.write("error: --seconds must be > 0\n")
        return 2
    try:
        run_suite(args.port, args.seconds, args.timeout)
    except BoardError as exc:
        sys.stderr.write(f"hil: FAILED {exc}\n")
        return exc.code
    sys.stdout.write(f"hil: all steps passed on {args.port} ({args.board})\n")
    return 0
