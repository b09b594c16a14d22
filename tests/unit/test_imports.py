"""device/ and hw/ import only what MicroPython has.

The rule, checked on the AST of every ``.py`` under ``device/`` and ``hw/``
(``hw/linux/`` is CPython-only by design and left out):

1. Anywhere, a file may import the portable modules (``PORTABLE``: sys, time,
   math, json, os, asyncio, heapq, struct, binascii, hashlib, gc, errno, select,
   socket, random, array, micropython), ``device``/``device.*``, ``hw``/``hw.*``
   and relative imports. Only the top-level name counts: ``import os.path`` and
   ``from os import path`` are violations (MicroPython has no ``os.path``).
   ``machine`` is allowed only under ``hw/mp/``.
2. A *guarded* import may also name a backend (``GUARDED``: aiosqlite, paho.*,
   sqlite3, ssl, tracemalloc). An import is guarded when it is
   - inside a function body (it runs only when called; the board profile decides
     whether it is ever called), or
   - in the CPython branch of an interpreter test: the ``else`` of
     ``if IS_MICROPYTHON:`` / ``if compat.IS_MICROPYTHON:``, or the body of
     ``if not IS_MICROPYTHON:``, or
   - in the body of a ``try:`` that catches ``ImportError`` or
     ``ModuleNotFoundError`` (the handler, ``else`` and ``finally`` are not guarded).
3. In the MicroPython branch (body of ``if IS_MICROPYTHON:``), the CPython-only
   backends (``CPYTHON_ONLY``) are violations even inside a function or try:
   that code only ever runs on MicroPython. ``ssl`` stays allowed there (boards have it).

Everything else (typing, dataclasses, enum, abc, logging, collections,
functools, ``__future__`` ...) is a violation wherever it appears, because the
code that imports it cannot run on a board. Each violation is reported as
``path:line: message``.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKED_DIRS = ("device", "hw")
CPYTHON_ONLY_DIRS = ("hw/linux/",)

PORTABLE = frozenset(
    {
        *("sys", "time", "math", "json", "os", "asyncio", "heapq", "struct", "binascii", "hashlib"),
        *("gc", "errno", "select", "socket", "random", "array", "micropython"),
    }
)
FIRST_PARTY = frozenset({"device", "hw"})
BOARD_ONLY = {"machine": "hw/mp/"}  # module -> the only folder that may import it
CPYTHON_ONLY = frozenset({"aiosqlite", "paho", "sqlite3", "tracemalloc"})
GUARDED = CPYTHON_ONLY | {"ssl"}
# Packages whose submodules may be named (``paho.mqtt.client``); stdlib modules may not.
DOTTED_OK = FIRST_PARTY | {"paho"}
FORBIDDEN_FROM = {("os", "path"): "MicroPython has no os.path (use device.compat path helpers)"}
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})


@dataclass(frozen=True)
class Context:
    in_function: bool = False
    optional: bool = False  # inside a try body that catches ImportError
    branch: str = ""  # "" | "micropython" | "cpython"

    @property
    def guarded(self) -> bool:
        return self.in_function or self.optional or self.branch == "cpython"


def _is_mp_flag(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "IS_MICROPYTHON"
    return isinstance(node, ast.Attribute) and node.attr == "IS_MICROPYTHON"


def _interpreter_test(test: ast.expr) -> str:
    """Which interpreter runs an ``if`` body: "micropython", "cpython" or "" (not an interpreter test)."""
    if _is_mp_flag(test):
        return "micropython"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_mp_flag(test.operand):
        return "cpython"
    return ""


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(k, ast.Name) and k.id in IMPORT_ERRORS for k in kinds):
            return True
    return False


def _judge(module: str, names: list[str], rel: str, ctx: Context) -> str | None:
    """Why importing ``module`` (and ``names`` from it) here is a violation, or None when it is allowed."""
    root = module.split(".", 1)[0]
    if module != root and root not in DOTTED_OK:
        return "import of '%s': only the top-level module '%s' may be imported (MicroPython lacks submodules)" % (
            module,
            root,
        )
    for name in names:
        why = FORBIDDEN_FROM.get((module, name))
        if why:
            return "from %s import %s: %s" % (module, name, why)
    if root in PORTABLE or root in FIRST_PARTY:
        return None
    if root in BOARD_ONLY:
        folder = BOARD_ONLY[root]
        return None if rel.startswith(folder) else "import of '%s' outside %s" % (root, folder)
    if root in GUARDED:
        if ctx.branch == "micropython" and root in CPYTHON_ONLY:
            return "import of CPython-only '%s' in an `if IS_MICROPYTHON:` branch" % root
        if ctx.guarded:
            return None
        return (
            "module-level import of backend '%s': move it into a function, the CPython branch of "
            "`if IS_MICROPYTHON:`, or a try/except ImportError" % root
        )
    where = "module-level import" if not ctx.guarded else "import"
    return "%s of '%s': not available on MicroPython (allowed: %s, device.*, hw.*)" % (
        where,
        module,
        ", ".join(sorted(PORTABLE)),
    )


def _walk(nodes: list[ast.stmt], rel: str, ctx: Context, out: list[tuple[int, str]]) -> None:
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                why = _judge(alias.name, [], rel, ctx)
                if why:
                    out.append((node.lineno, why))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                why = _judge(node.module, [a.name for a in node.names], rel, ctx)
                if why:
                    out.append((node.lineno, why))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _walk(node.body, rel, Context(True, ctx.optional, ctx.branch), out)
        elif isinstance(node, ast.ClassDef):
            _walk(node.body, rel, ctx, out)  # a class body runs at import time
        elif isinstance(node, ast.If):
            branch = _interpreter_test(node.test)
            if branch:
                other = "cpython" if branch == "micropython" else "micropython"
                _walk(node.body, rel, Context(ctx.in_function, ctx.optional, branch), out)
                _walk(node.orelse, rel, Context(ctx.in_function, ctx.optional, other), out)
            else:
                _walk(node.body, rel, ctx, out)
                _walk(node.orelse, rel, ctx, out)
        elif isinstance(node, ast.Try):
            optional = ctx.optional or _catches_import_error(node)
            _walk(node.body, rel, Context(ctx.in_function, optional, ctx.branch), out)
            for handler in node.handlers:
                _walk(handler.body, rel, ctx, out)
            _walk(node.orelse, rel, ctx, out)
            _walk(node.finalbody, rel, ctx, out)
        elif isinstance(node, ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
            _walk(node.body, rel, ctx, out)
            _walk(getattr(node, "orelse", []), rel, ctx, out)
        elif isinstance(node, ast.Match):  # not MicroPython syntax, but do not let it hide imports
            for case in node.cases:
                _walk(case.body, rel, ctx, out)


def check_source(source: str, rel: str) -> list[str]:
    """Violations in one file's source, as ``rel:line: message``; ``rel`` is its repo-relative path."""
    found: list[tuple[int, str]] = []
    _walk(ast.parse(source, rel).body, rel, Context(), found)
    return ["%s:%d: %s" % (rel, line, why) for line, why in sorted(found)]


def checked_files() -> Iterator[Path]:
    for top in CHECKED_DIRS:
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if not any(rel.startswith(skip) for skip in CPYTHON_ONLY_DIRS):
                yield path


def test_device_and_hw_import_only_what_micropython_has() -> None:
    files = list(checked_files())
    assert len(files) >= 3, "expected device/ and hw/ sources under " + str(REPO_ROOT)
    violations = []
    for path in files:
        rel = path.relative_to(REPO_ROOT).as_posix()
        violations += check_source(path.read_text(encoding="utf-8"), rel)
    assert not violations, "%d import(s) MicroPython cannot satisfy:\n  %s" % (
        len(violations),
        "\n  ".join(violations),
    )


# ---------------------------------------------------------------- the checker checks itself


def _check(source: str, rel: str = "device/x.py") -> list[str]:
    return check_source(source.replace("\n    ", "\n").strip() + "\n", rel)


def test_checker_reports_file_and_line_of_a_bad_module_level_import() -> None:
    found = _check(
        """
    import sys
    from typing import Any
    """
    )
    assert len(found) == 1 and found[0].startswith("device/x.py:2: module-level import of 'typing'")


@pytest.mark.parametrize(
    "source",
    [
        "import dataclasses",
        "import logging",
        "from collections import OrderedDict",
        "from __future__ import annotations",
        "import os.path",
        "from os import path",
        "import aiosqlite",
        "import paho.mqtt.client as mqtt",
        "import sqlite3\nimport json",
        "class C:\n    import enum",
        "if DEBUG:\n    import tracemalloc",
        "import machine",
    ],
)
def test_checker_catches(source: str) -> None:
    assert len(check_source(source, "device/x.py")) == 1


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio, heapq, json, os, struct, sys, time",
        "from micropython import const",
        "from device import compat\nfrom device.errors import ConfigError\nimport hw.registry",
        "from . import sibling\nfrom .core import law",
        "def open_db():\n    import aiosqlite\n    import sqlite3",
        "async def dial():\n    import ssl\n    import paho.mqtt.client",
        "try:\n    import ssl\nexcept ImportError:\n    ssl = None",
        "try:\n    import aiosqlite\nexcept (ImportError, OSError):\n    aiosqlite = None",
        "if IS_MICROPYTHON:\n    from micropython import const\nelse:\n    import tracemalloc",
        "if compat.IS_MICROPYTHON:\n    pass\nelse:\n    import sqlite3",
        "if not IS_MICROPYTHON:\n    import sqlite3",
        "if IS_MICROPYTHON:\n    def f():\n        import ssl",
    ],
)
def test_checker_allows(source: str) -> None:
    assert check_source(source, "device/x.py") == []


def test_checker_refuses_cpython_backends_in_the_micropython_branch() -> None:
    source = "if IS_MICROPYTHON:\n    def f():\n        import sqlite3\nelse:\n    import sqlite3\n"
    assert check_source(source, "device/x.py") == [
        "device/x.py:3: import of CPython-only 'sqlite3' in an `if IS_MICROPYTHON:` branch"
    ]


def test_checker_guards_only_the_try_body_not_the_handler() -> None:
    source = "try:\n    import aiosqlite\nexcept ImportError:\n    import sqlite3\n"
    found = check_source(source, "device/x.py")
    assert len(found) == 1 and found[0].startswith("device/x.py:4: module-level import of backend 'sqlite3'")
    # A try that does not catch ImportError guards nothing.
    assert len(check_source("try:\n    import sqlite3\nexcept OSError:\n    pass\n", "device/x.py")) == 1


def test_checker_allows_machine_only_in_board_drivers() -> None:
    assert check_source("import machine\nfrom machine import Pin", "hw/mp/pins.py") == []
    found = check_source("from machine import Pin", "hw/sim/room.py")
    assert found == ["hw/sim/room.py:1: import of 'machine' outside hw/mp/"]


def test_checker_refuses_unknown_modules_even_inside_functions() -> None:
    found = check_source("def f():\n    import typing\n", "device/x.py")
    assert len(found) == 1 and found[0].startswith("device/x.py:2: import of 'typing'")
