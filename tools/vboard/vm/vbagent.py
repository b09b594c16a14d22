"""The virtual board's firmware loop, run inside the ``micropython`` binary: one process is one boot.

The bridge (``tools/vboard/bridge.py``) starts it as
``vbagent.main(fs_dir, mode, cause, wiring_path, ctl_path, rom_path, rom_bytes)`` and pipes the
board's serial line to stdin/stdout. Like a real port's ``main.c`` it mounts
the board's filesystem at ``/``, runs ``/boot.py``, then ``/main.py`` unless
the raw REPL was active at the reset, then serves the friendly or raw REPL
(with a ROMFS partition, ``vbrom``, its image is mounted at ``/rom`` first)
(the protocol as ``shared/runtime/pyexec.c`` speaks it, raw-paste included).

A soft reset ends the process with ``EXIT_SOFT`` (friendly) or ``EXIT_SOFT_RAW``;
``machine.reset()`` with ``EXIT_HARD``: the bridge starts a fresh process, so
every boot gets a fresh heap, as on a board. Ctrl-C reaches the VM as SIGINT
(the bridge sends it), which the unix port raises as ``KeyboardInterrupt``.
"""

import sys

EXIT_SOFT = 3
EXIT_SOFT_RAW = 4
EXIT_HARD = 5
_WINDOW = 4096  # raw-paste flow-control window: the pipe buffers far more than a UART
_BANNER = 'MicroPython %s on vboard; %s with %s\r\nType "help()" for more information.\r\n'


class SoftReset(Exception):
    pass


class Repl:
    """The REPL state machine over a byte reader and writer (also run on CPython by the unit tests)."""

    def __init__(self, read, write, run, banner="") -> None:  # type: ignore[no-untyped-def]
        """``read(n)`` -> bytes (b"" at end); ``write(str)``; ``run(code, mode)`` executes and reports."""
        self.read = read
        self.write = write
        self.run = run
        self.banner = banner

    def getc(self) -> int:
        try:
            c = self.read(1)
        except KeyboardInterrupt:
            return 3  # the bridge turns ^C into SIGINT; at a prompt it is just the key
        if not c:
            raise EOFError
        return c[0]

    def raw(self) -> str:
        """Serve the raw REPL; returns "friendly" (Ctrl-B) or raises SoftReset (Ctrl-D on empty input)."""
        self.write("raw REPL; CTRL-B to exit\r\n")
        line = bytearray()
        self.write(">")
        while True:
            c = self.getc()
            if c == 1:  # Ctrl-A: raw-paste request (^E A ^A) or a raw REPL reset
                if line == b"\x05A":
                    self.paste()
                    line = bytearray()
                    self.write(">")
                    continue
                line = bytearray()
                self.write("raw REPL; CTRL-B to exit\r\n>")
            elif c == 2:
                self.write("\r\n")
                return "friendly"
            elif c == 3:
                line = bytearray()
            elif c == 4:
                self.write("OK")
                if not line:
                    self.write("\r\n")
                    raise SoftReset()
                self.run(bytes(line), "raw")
                line = bytearray()
                self.write(">")
            else:
                line.append(c)

    def paste(self) -> None:
        # Raw-paste: accept with a window; grant another window each time one is consumed.
        self.write("R\x01" + chr(_WINDOW & 0xFF) + chr(_WINDOW >> 8))
        code = bytearray()
        left = _WINDOW
        while True:
            c = self.getc()
            if c == 4:
                break
            if c == 3:
                # Abandon the paste as a board does: say end-of-data, the host acknowledges.
                self.write("\x04")
                self.getc()
                return
            code.append(c)
            left -= 1
            if left == 0:
                left = _WINDOW
                self.write("\x01")
        self.write("\x04")
        self.run(bytes(code), "raw")

    def friendly(self) -> str:
        """Serve the friendly REPL; returns "raw" (Ctrl-A) or raises SoftReset (Ctrl-D on an empty line)."""
        self.write(self.banner)
        lines: list = []
        line = bytearray()
        self.write(">>> ")
        while True:
            c = self.getc()
            if c == 1:
                self.write("\r\n")
                return "raw"
            if c == 2:
                self.write("\r\n" + self.banner)
                lines, line = [], bytearray()
                self.write(">>> ")
            elif c == 3:
                lines, line = [], bytearray()
                self.write("\r\nKeyboardInterrupt\r\n>>> ")
            elif c == 4:
                if not line and not lines:
                    self.write("\r\n")
                    raise SoftReset()
            elif c in (8, 127):
                if line:
                    line = line[:-1]
                    self.write("\x08 \x08")
            elif c in (10, 13):
                self.write("\r\n")
                text = bytes(line)
                line = bytearray()
                if lines or _opens_block(text):
                    lines.append(text)
                    if text.strip():
                        self.write("... ")
                        continue
                    text = b"\n".join(lines)
                    lines = []
                if text.strip():
                    self.run(text, "single")
                self.write(">>> ")
            elif c >= 32:
                line.append(c)
                self.write(chr(c))


def _opens_block(text: bytes) -> bool:
    text = text.rstrip()
    return text.endswith(b":") or text.endswith(b"\\")


class Vm:
    """Executes REPL input in one ``__main__`` namespace per boot, printing as a board does."""

    def __init__(self, write) -> None:  # type: ignore[no-untyped-def]
        self.write = write
        self.globals = {"__name__": "__main__"}

    def run(self, code: bytes, mode: str) -> None:
        raw = mode == "raw"
        failed = None
        try:
            exec(compile(code, "<stdin>", "single" if mode == "single" else "exec"), self.globals)
        except SystemExit:
            if raw:
                self.write("\x04\x04")
            raise SoftReset() from None
        except BaseException as exc:  # the board reports everything and goes on
            if getattr(exc, "hard_reset", False):
                raise
            failed = exc
        if raw:
            self.write("\x04")
        if failed is not None:
            _print_exception(failed)
        if raw:
            self.write("\x04")


def _print_exception(exc: BaseException) -> None:
    if sys.implementation.name == "micropython":
        sys.print_exception(exc)  # type: ignore[attr-defined]
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stdout)


def _run_file(vm: Vm, path: str) -> None:
    try:
        with open(path, "rb") as f:
            code = f.read()
    except OSError:
        return
    vm.run(code, "file")


def main(
    fs_dir: str, mode: str, cause: int, wiring_path: str, ctl_path: str, rom_path: str = "", rom_bytes: int = 0
) -> None:
    if rom_bytes:  # the ROMFS partition first: one block at the heap's start (see vbrom)
        import vbrom

        vbrom.reserve(rom_path, rom_bytes)
    import os

    import simmachine
    import vbos

    simmachine.install(wiring_path, ctl_path, cause)
    # The board's filesystem becomes "/", so absolute paths mean what they mean on a board.
    os.umount("/")
    os.mount(os.VfsPosix(fs_dir), "/")
    vbos.setup(fs_dir)
    sys.modules["os"] = vbos
    import vbfs

    vbfs.install(simmachine._wiring, vbos.HOST_MOUNT)  # the filesystem's size, if the board has one
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]  # as on a board: asyncio and friends are frozen
    if rom_bytes:
        vbrom.install(vbos.HOST_MOUNT)
        if vbrom.mount_rom():  # as the firmware does: /rom and /rom/lib right after "" and ".frozen"
            sys.path[2:2] = ["/rom", "/rom/lib"]
    write = sys.stdout.write
    vm = Vm(write)
    version = "v%d.%d.%d" % sys.implementation.version[:3]
    repl = Repl(sys.stdin.buffer.read, write, vm.run, _BANNER % (version, simmachine.BOARD_NAME, simmachine.CHIP))
    import gc

    gc.collect()
    simmachine.ready()
    try:
        _run_file(vm, "boot.py")
        if mode != "raw":
            _run_file(vm, "main.py")
        while True:
            try:
                mode = repl.raw() if mode == "raw" else repl.friendly()
            except KeyboardInterrupt:
                pass  # a ^C outside any read or exec: the prompt starts over
    except SoftReset:
        write("MPY: soft reboot\r\n")
        sys.exit(EXIT_SOFT_RAW if mode == "raw" else EXIT_SOFT)
    except simmachine.HardReset:
        sys.exit(EXIT_HARD)
    except EOFError:
        sys.exit(0)
