"""Brickproof portable device runtime (runs on MicroPython and CPython)."""
