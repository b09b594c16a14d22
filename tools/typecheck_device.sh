#!/usr/bin/env bash
# Type-check device/ and hw/ as MicroPython sees them, once per board, against
# that board's stubs (installed by `make typings` with pip --target, because
# micropython-esp32-stubs and micropython-rp2-rpi-pico-w-stubs overwrite each
# other's files when they share a site-packages).
#
# usage: tools/typecheck_device.sh [BOARD...]      (default: esp32 rp2)
# env:   MYPY (default .venv/bin/mypy or mypy on PATH), TYPINGS (default typings)
#
# How the stubs are wired in:
#   custom_typeshed_dir  the stub package's stdlib/ (MicroPython's builtins, asyncio, os, sys ...)
#   mypy_path            its top level (time, machine, micropython, gc, math ...)
#   no_site_packages     so nothing of CPython's leaks in
#   follow_imports=silent + follow_imports_for_stubs
#                        errors inside the stubs themselves are not ours to fix
#   always_true          IS_MICROPYTHON: only the MicroPython branch of compat-style
#                        `if IS_MICROPYTHON:` blocks is checked here; the host pass
#                        (pyproject [tool.mypy], always_false) checks the other.
set -euo pipefail

cd "$(dirname "$0")/.."
TYPINGS=${TYPINGS:-typings}
if [ -z "${MYPY:-}" ]; then
    if [ -x "${VENV:-.venv}/bin/mypy" ]; then MYPY="${VENV:-.venv}/bin/mypy"; else MYPY=mypy; fi
fi
boards=("$@")
[ ${#boards[@]} -gt 0 ] || boards=(esp32 rp2)

status=0
for board in "${boards[@]}"; do
    stubs="$TYPINGS/$board"
    if [ ! -f "$stubs/stdlib/VERSIONS" ]; then
        echo "typecheck_device: no stubs for '$board' in $stubs (run: make typings)" >&2
        exit 2
    fi
    abs=$(cd "$stubs" && pwd)
    ini="$abs/mypy-device.ini"
    cat >"$ini" <<INI
[mypy]
python_version = 3.11
custom_typeshed_dir = $abs
mypy_path = $abs
no_site_packages = True
follow_imports = silent
follow_imports_for_stubs = True
always_true = IS_MICROPYTHON
exclude = ^hw/linux/
check_untyped_defs = True
strict_equality = True
warn_redundant_casts = True
INI
    echo "mypy device/ hw/ against MicroPython $board stubs"
    if ! "$MYPY" --config-file "$ini" --cache-dir "$abs/.mypy_cache" device hw; then
        status=1
    fi
done
exit $status
