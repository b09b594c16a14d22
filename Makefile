# Brickproof developer entry points. GNU make on Debian; works from a fresh clone
# (as root: it may apt-get install python3-venv) and is idempotent.
#
#   make demo       the outage simulation: a fleet through us-east-1-2025 (a few minutes)
#   make test       lint + typecheck + every pytest layer (unit, pure, MicroPython)
#   make lint | typecheck | pytest     one step
#   make heapcheck  pure tests under MicroPython with a 128k heap, one module per VM

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV ?= .venv
TYPINGS ?= typings
BIN := $(VENV)/bin
# The venv is (re)installed only when pyproject.toml's content changes.
VENV_STAMP := $(VENV)/.brickproof-installed
# MicroPython board stubs, one --target dir each: they overwrite each other's files.
STUBS_esp32 := micropython-esp32-stubs~=1.29.0
STUBS_rp2 := micropython-rp2-rpi-pico-w-stubs~=1.29.0
BOARDS := esp32 rp2
HEAP ?= 128k

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv typings wasm-vm system-deps demo test lint typecheck typecheck-host typecheck-device pytest heapcheck clean

help:
	@sed -n '1,8p' Makefile

# ------------------------------------------------------------------ system packages
# System (apt) packages the tests need, each installed only when missing:
# mosquitto, the real broker of the integration layer (tests start their own); node and npm, which
# run the wasm32 MicroPython VM of the heap budget test.
system-deps:
	@if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then \
		echo "make: installing mosquitto (apt-get)"; \
		apt-get update -q && apt-get install -y -q mosquitto; \
	fi
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		echo "make: installing nodejs and npm (apt-get), for the wasm32 MicroPython VM"; \
		apt-get update -q && apt-get install -y -q nodejs npm; \
	fi

# ------------------------------------------------------------------ the 32-bit MicroPython VM
# MicroPython's webassembly port (npm), run by node: tools/vboard/heapmap.py --vm wasm32 measures
# the heap a 32-bit board boots in (tests/integration/test_heap_budget.py). Installed when the lock changes.
WASM_DIR := tools/vboard/wasm
WASM_STAMP := $(WASM_DIR)/node_modules/.brickproof-installed

wasm-vm: system-deps
	@want=$$(sha256sum $(WASM_DIR)/package-lock.json | cut -d' ' -f1); \
	if [ -f "$(WASM_STAMP)" ] && [ "$$(cat $(WASM_STAMP))" = "$$want" ]; then exit 0; fi; \
	echo "make: installing the wasm32 MicroPython VM into $(WASM_DIR)/node_modules"; \
	npm ci --prefix $(WASM_DIR) --no-audit --no-fund --loglevel=error; \
	echo "$$want" > "$(WASM_STAMP)"

# ------------------------------------------------------------------ venv
venv: system-deps
	@want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ -x "$(BIN)/python" ] && [ -f "$(VENV_STAMP)" ] && [ "$$(cat $(VENV_STAMP))" = "$$want" ]; then \
		exit 0; \
	fi; \
	if [ ! -x "$(BIN)/python" ]; then \
		if ! $(PYTHON) -m venv "$(VENV)" >/dev/null 2>&1; then \
			echo "make: '$(PYTHON) -m venv' failed; installing python3-venv"; \
			rm -rf "$(VENV)"; \
			apt-get update -q && apt-get install -y -q python3-venv; \
			$(PYTHON) -m venv "$(VENV)"; \
		fi; \
	fi; \
	echo "make: installing brickproof[dev] into $(VENV)"; \
	"$(BIN)/python" -m pip install -q -e '.[dev]'; \
	echo "$$want" > "$(VENV_STAMP)"

# ------------------------------------------------------------------ board stubs
typings: venv
	@for board in $(BOARDS); do \
		case $$board in esp32) spec='$(STUBS_esp32)';; rp2) spec='$(STUBS_rp2)';; esac; \
		dir="$(TYPINGS)/$$board"; \
		if [ -f "$$dir/.spec" ] && [ "$$(cat $$dir/.spec)" = "$$spec" ] && [ -f "$$dir/stdlib/VERSIONS" ]; then \
			continue; \
		fi; \
		echo "make: installing $$spec into $$dir"; \
		rm -rf "$$dir"; \
		"$(BIN)/python" -m pip install -q --no-compile --target "$$dir" "$$spec"; \
		echo "$$spec" > "$$dir/.spec"; \
	done

# ------------------------------------------------------------------ demo
demo: venv
	$(BIN)/brickproof sim --scenario us-east-1-2025 --report report/us-east-1-2025

# ------------------------------------------------------------------ checks
# Every step runs even when an earlier one failed, so one run shows all problems;
# the target fails if any did.
test: venv typings wasm-vm
	@failed=""; \
	$(MAKE) --no-print-directory lint || failed="$$failed lint"; \
	$(MAKE) --no-print-directory -k typecheck || failed="$$failed typecheck"; \
	$(MAKE) --no-print-directory pytest || failed="$$failed pytest"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all passed (lint, typecheck, pytest)"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: typecheck-host typecheck-device

# Host code strict (tools/, cloud_shim/); device/ and hw/ as CPython sees them.
typecheck-host: venv
	$(BIN)/mypy tools cloud_shim device hw

# device/ and hw/ against each board's MicroPython stubs.
typecheck-device: typings
	MYPY=$(BIN)/mypy TYPINGS=$(TYPINGS) tools/typecheck_device.sh $(BOARDS)

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
pytest: venv
	@rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make pytest: FAILED: pytest collected no tests"; fi; \
	exit $$rc

# Each pure test module alone under MicroPython with a board-sized heap (not yet part of `test`).
heapcheck: venv
	BRICKPROOF_SMALL_HEAP=$(HEAP) $(BIN)/pytest tests/portable -k small_heap

clean:
	rm -rf $(TYPINGS) build *.egg-info .mypy_cache .ruff_cache
