"""``mqtt-malformed``: hostile broker bytes against both MQTT clients; no crash, no hang, invalid closes.

Per implementation (``portable``: device/link/mqtt.py, ``paho``: device/link/paho_client.py),
all over real loopback TCP through ``cloud_shim.faults.scriptbroker``:

1. ``corpus``: every sequence of ``shared/corpora/mosquitto-packets`` after a normal CONNACK,
   then a QoS 0 PUBLISH on ``sentinel`` and EOF. A client that accepted the bytes delivers the
   sentinel; one that refused them closes first. Verdicts as in
   tests/integration/test_mqtt_corpus.py (``CorpusCase.client_keeps_open``; none for MQTT 5).
2. ``first``: each distinct corpus payload in place of the CONNACK, then EOF: ``connect`` must
   raise a ``LinkError`` (only the two valid CONNACKs open the session).
3. ``mutations``: ``tools.torture.mqtt_mutate`` bytes, then the sentinel and EOF, judged by its
   independent oracle: valid -> sentinel delivered, invalid -> closed without delivering it
   (the portable client: with reason ``protocol``), cut short -> closed.

Plus, for the portable client only, ``direct``: the same mutations straight into its decoder and
packet handler (no socket), for the counts a socket cannot reach in time; and ``micropython``: the
corpus phase against the client running in the ``micropython`` binary (``mqtt_mpclient.py``), with
its heap after each case (goal: no growth once it settled, ``MP_LATE_GROWTH_BOUND``).

A crash is an exception escaping the client (the event loop's exception handler called, an
exception other than ``LinkError`` from ``connect``, the portable client closing with
``internal``); a hang is a client that neither closed nor delivered the sentinel within 1 s of
the input and EOF. Goals: 0 crashes, 0 hangs, every case judged, and for the portable client 0
invalid inputs kept open and 0 valid inputs refused. paho-mqtt is a third-party parser and more
lenient (it accepts what a broker should never send); its disagreements are figures, not goals.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from cloud_shim.faults import scriptbroker as sb
from device.core import mqtt_codec as codec
from device.link.mqtt import MqttClient
from device.linkerrors import LinkError, ProtocolError
from tools.torture.mqtt_clients import CLIENTS, Seen, close_quietly
from tools.torture.mqtt_mutate import mutate, verdict

NAME = "mqtt-malformed"
SUMMARY = "Mosquitto's malformed packets + random mutations vs both MQTT clients: no crash, no hang"

HANG_S = 1.0
SENTINEL = sb.publish("sentinel", b"ok")
QUEUE_LEN = 64
MAX_PACKET = 8192  # the portable client's default max_packet
TCP_MUTATIONS = {"ci": 800, "long": 50_000}
DIRECT_MUTATIONS = {"ci": 50_000, "long": 2_000_000}
PHASE_BOUND_S = {"ci": 25.0, "long": 1500.0}  # per phase and client: stop early, and say so in the figures


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.crashes = 0
        self.hangs = 0
        self.invalid_kept_open = 0
        self.valid_closed = 0
        self.notes: list[str] = []

    def note(self, what: str) -> None:
        if len(self.notes) < 5:
            self.notes.append(what)


async def _session(broker: sb.ScriptBroker, make: Callable[..., Any], data: bytes) -> tuple[bool, str | None, bool]:
    """Send ``data`` + sentinel + EOF after a CONNACK: ``(sentinel delivered, close reason, hung)``."""
    client = make("malformed", keepalive_s=0, clean_session=True, queue_len=QUEUE_LEN, connect_timeout_ms=5000)
    seen = Seen(client)
    try:
        conn, task, _ = await sb.serve_connect(broker, client)
        await asyncio.wait_for(task, sb.STEP_TIMEOUT_S)
        conn.send(data + SENTINEL)
        conn.send_eof()
        closed = await seen.until(lambda: client.closed is not None, HANG_S)
        delivered = ("sentinel", b"ok") in seen.messages
        return delivered, client.closed, not closed
    finally:
        await close_quietly(client)
        broker.close_all()


def _judge(tally: Tally, label: str, keep: bool | None, outcome: tuple[bool, str | None, bool], strict: bool) -> None:
    delivered, reason, hung = outcome
    tally.cases += 1
    if hung:
        tally.hangs += 1
        tally.note(f"hang: {label}")
    if reason == "internal":
        tally.crashes += 1
        tally.note(f"internal error: {label}")
    if keep is True and not delivered:
        tally.valid_closed += 1
        tally.note(f"valid input refused ({reason}): {label}")
    elif keep is False and (delivered or (strict and reason != "protocol")):
        tally.invalid_kept_open += 1
        tally.note(f"invalid input {'delivered past' if delivered else 'closed as ' + str(reason)}: {label}")


async def _guarded(coro: Any, tally: Tally, label: str) -> Any:
    try:
        return await asyncio.wait_for(coro, 3 * sb.STEP_TIMEOUT_S)
    except sb.ScriptError as exc:
        tally.crashes += 1  # the client did not even connect to a good CONNACK: broken by earlier cases
        tally.note(f"{label}: {exc}")
    except TimeoutError:
        tally.hangs += 1
        tally.note(f"{label}: stuck over {3 * sb.STEP_TIMEOUT_S} s")
    except Exception as exc:
        tally.crashes += 1
        tally.note(f"{label}: {type(exc).__name__}: {exc}")
    return None


async def _corpus(broker: sb.ScriptBroker, make: Callable[..., Any], strict: bool, tally: Tally, stop: float) -> None:
    for case in sb.load_corpus():
        if time.monotonic() > stop:
            return
        outcome = await _guarded(_session(broker, make, b"".join(case.sends)), tally, case.label)
        if outcome is not None:
            _judge(tally, case.label, case.client_keeps_open, outcome, strict)


async def _first(broker: sb.ScriptBroker, make: Callable[..., Any], tally: Tally, stop: float) -> None:
    payloads = sorted({b"".join(c.sends) for c in sb.load_corpus() if c.ver != 5})
    for payload in payloads:
        if time.monotonic() > stop:
            return
        tally.cases += 1
        client = make("malformed", keepalive_s=0, clean_session=True, connect_timeout_ms=5000)
        task = asyncio.ensure_future(client.connect(sb.LOCAL, broker.port))
        try:
            conn = await broker.accept()
            if conn is None or await conn.read_packet() is None:
                raise sb.ScriptError("no CONNECT")
            conn.send(payload)
            conn.send_eof()
            try:
                opened = await asyncio.wait_for(asyncio.shield(task), HANG_S)
                if payload.hex() not in sb.VALID_CONNACKS:
                    tally.invalid_kept_open += 1
                    tally.note(f"first packet {payload.hex()[:40]} opened the session ({opened})")
            except LinkError:
                if payload.hex() in sb.VALID_CONNACKS:
                    tally.valid_closed += 1
                    tally.note(f"valid CONNACK {payload.hex()} refused")
            except TimeoutError:
                tally.hangs += 1
                tally.note(f"first packet {payload.hex()[:40]}: connect pending after {HANG_S} s")
        except sb.ScriptError as exc:
            tally.crashes += 1
            tally.note(str(exc))
        except Exception as exc:
            tally.crashes += 1
            tally.note(f"first packet {payload.hex()[:40]}: {type(exc).__name__}: {exc}")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await close_quietly(client)
            broker.close_all()


async def _mutations(
    broker: sb.ScriptBroker,
    make: Callable[..., Any],
    strict: bool,
    tally: Tally,
    count: int,
    rng: random.Random,
    stop: float,
) -> None:
    limit = MAX_PACKET if strict else None
    for _ in range(count):
        if time.monotonic() > stop:
            return
        kind, data = mutate(rng)
        label = f"{kind} {data.hex()[:60]}"
        want = verdict(data, limit)
        if want == "incomplete":
            # The sentinel goes into the packet cut short: only a verdict on the whole can be expected.
            keep = False if verdict(data + SENTINEL, limit) == "invalid" else None
        else:
            keep = want == "valid"
        outcome = await _guarded(_session(broker, make, data), tally, label)
        if outcome is not None:
            _judge(tally, label, keep, outcome, strict)


def _direct(count: int, rng: random.Random, tally: Tally, stop: float, client_class: Callable[..., Any]) -> None:
    """Mutations straight into the portable client's decoder and packet handler (its read loop, minus the socket)."""
    client = client_class("direct", keepalive_s=0, queue_len=QUEUE_LEN)
    client._note_open(False)
    new_decoder: Any = codec.Decoder  # untyped device code
    decoder = new_decoder(MAX_PACKET)
    for done in range(count):
        if done % 1000 == 0 and time.monotonic() > stop:
            return
        kind, data = mutate(rng)
        want = verdict(data, MAX_PACKET)
        decoder.reset()
        client._tx_len = 0
        client.take_messages()
        got = "valid"
        try:
            pos = 0
            for _ in range(len(data) + 2):
                packet = decoder.next()
                while packet is not None:
                    client._handle(packet)
                    packet = decoder.next()
                if pos >= len(data):
                    break
                pos += decoder.feed(data[pos:])
            if decoder.pending():
                got = "incomplete"
        except ProtocolError:
            got = "invalid"
        except Exception as exc:
            tally.crashes += 1
            tally.note(f"direct {kind} {data.hex()[:60]}: {type(exc).__name__}: {exc}")
            got = "crash"
        tally.cases += 1
        if got not in (want, "crash"):
            if want == "invalid":
                tally.invalid_kept_open += 1
            else:
                tally.valid_closed += 1
            tally.note(f"direct {kind} {data.hex()[:60]}: client {got}, oracle {want}")


MP_SCRIPT = Path(__file__).with_name("mqtt_mpclient.py")
# The heap settles after the first few hundred cases (one-off allocations); a leak keeps growing:
# the most the last quarter's peak may exceed the first half's.
MP_LATE_GROWTH_BOUND = 2048


def micropython_binary() -> str | None:
    """The ``micropython`` beside this interpreter (the venv's), else on PATH."""
    here = Path(sys.executable).with_name("micropython")
    return str(here) if os.access(here, os.X_OK) else shutil.which("micropython")


async def _serve_cases(broker: sb.ScriptBroker, cases: list[sb.CorpusCase]) -> None:
    for case in cases:
        conn = await broker.accept(3 * sb.STEP_TIMEOUT_S)
        if conn is None:
            return  # the client process is gone: its output says why
        if await conn.read_packet() is not None:
            conn.send(sb.connack() + b"".join(case.sends) + SENTINEL)
            conn.send_eof()
            await conn.wait_eof()
        conn.close()


async def _micropython_corpus(binary: str, tally: Tally, stop: float) -> dict[str, int]:
    """The corpus against the portable client in a ``micropython`` process; returns heap figures."""
    cases = sb.load_corpus()
    heaps: list[int] = []
    async with sb.ScriptBroker() as broker:
        server = asyncio.ensure_future(_serve_cases(broker, cases))
        proc = await asyncio.create_subprocess_exec(
            binary, str(MP_SCRIPT), str(broker.port), str(len(cases)), stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        try:
            for case in cases:
                line = await asyncio.wait_for(proc.stdout.readline(), max(1.0, stop - time.monotonic()))
                parts = line.decode().split()
                if len(parts) != 5 or parts[0] != "case":
                    tally.crashes += 1
                    tally.note(f"micropython: {case.label}: output {line[:120]!r}")
                    break
                delivered, reason = parts[2] == "1", parts[3]
                heaps.append(int(parts[4]))
                if reason.startswith("raised:"):
                    tally.crashes += 1
                    tally.note(f"micropython: {case.label}: {reason}")
                    reason = "internal"
                _judge(tally, case.label, case.client_keeps_open, (delivered, reason, reason == "hang"), True)
        except TimeoutError:
            tally.hangs += 1
            tally.note("micropython: no output within the time bound")
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
    if len(heaps) < 4:
        return {}
    late = max(heaps[len(heaps) * 3 // 4 :]) - max(heaps[: len(heaps) // 2])
    return {"heap_first": heaps[0], "heap_max": max(heaps), "heap_late_growth": late}


async def _campaign(
    kind: str, make: Callable[..., Any], size: str, seed: int, progress: TextIO | None
) -> dict[str, Any]:
    strict = kind == "portable"
    rng = random.Random(f"{seed}:{kind}")
    loop = asyncio.get_running_loop()
    escaped: list[str] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(str(context.get("exception") or context)))
    phases: dict[str, Tally] = {}
    seconds: dict[str, float] = {}
    async with sb.ScriptBroker() as broker:
        for phase in ("corpus", "first", "mutations"):
            started = time.monotonic()
            stop = started + PHASE_BOUND_S[size]
            tally = phases[phase] = Tally()
            before = len(escaped)
            if phase == "corpus":
                await _corpus(broker, make, strict, tally, stop)
            elif phase == "first":
                await _first(broker, make, tally, stop)
            else:
                await _mutations(broker, make, strict, tally, TCP_MUTATIONS[size], rng, stop)
            tally.crashes += len(escaped) - before
            for what in escaped[before:]:
                tally.note(f"escaped to the event loop: {what[:120]}")
            seconds[phase] = time.monotonic() - started
            if progress is not None:
                print(f"{NAME}: {kind}: {phase}: {tally.cases} cases in {seconds[phase]:.1f} s", file=progress)
    return {"phases": phases, "seconds": seconds}


def run(
    size: str, seed: int, progress: TextIO | None, clients: dict[str, Callable[..., Any]] | None = None
) -> dict[str, Any]:
    """The harness (``clients``: name -> factory, default both implementations; tests seed bugs here)."""
    table = clients or CLIENTS
    figures: dict[str, Any] = {}
    goals: dict[str, list[Any]] = {}
    corpus_size = len(sb.load_corpus())
    for kind in sorted(table):
        result = asyncio.run(_campaign(kind, table[kind], size, seed, progress))
        phases, seconds = result["phases"], result["seconds"]
        if kind == "portable":
            started = time.monotonic()
            direct = phases["direct"] = Tally()
            client_class = table[kind] if isinstance(table[kind], type) else MqttClient
            _direct(
                DIRECT_MUTATIONS[size],
                random.Random(f"{seed}:direct"),
                direct,
                started + PHASE_BOUND_S[size] * 2,
                client_class,
            )
            seconds["direct"] = time.monotonic() - started
            if progress is not None:
                print(f"{NAME}: portable: direct: {direct.cases} cases in {seconds['direct']:.1f} s", file=progress)
            binary = micropython_binary()
            if binary is None:
                figures["portable.micropython.skipped"] = "no micropython binary"
            elif client_class is MqttClient:  # a seeded-bug subclass cannot cross into the other interpreter
                started = time.monotonic()
                tally = phases["micropython"] = Tally()
                heap = asyncio.run(_micropython_corpus(binary, tally, started + PHASE_BOUND_S[size]))
                seconds["micropython"] = time.monotonic() - started
                for key, value in heap.items():
                    figures[f"portable.micropython.{key}"] = value
                goals["portable.micropython.heap_late_growth"] = ["<=", MP_LATE_GROWTH_BOUND]
                goals["portable.micropython.cases"] = [">=", corpus_size]
                if progress is not None:
                    print(f"{NAME}: portable: micropython: {tally.cases} cases, heap {heap}", file=progress)
        for phase, tally in phases.items():
            key = f"{kind}.{phase}"
            figures[f"{key}.cases"] = tally.cases
            figures[f"{key}.crashes"] = tally.crashes
            figures[f"{key}.hangs"] = tally.hangs
            figures[f"{key}.invalid_kept_open"] = tally.invalid_kept_open
            figures[f"{key}.valid_refused"] = tally.valid_closed
            figures[f"{key}.wall_s"] = round(seconds[phase], 2)
            if tally.notes:
                figures[f"{key}.first_problems"] = tally.notes
            goals[f"{key}.crashes"] = ["==", 0]
            goals[f"{key}.hangs"] = ["==", 0]
            if kind == "portable":
                goals[f"{key}.invalid_kept_open"] = ["==", 0]
                goals[f"{key}.valid_refused"] = ["==", 0]
        goals[f"{kind}.corpus.cases"] = [">=", corpus_size]
        goals[f"{kind}.mutations.cases"] = [">=", min(TCP_MUTATIONS[size], 500)]
    return {"name": NAME, "size": size, "seed": seed, "figures": figures, "goals": goals}
