"""Raspberry Pi drivers for CPython on Linux, through the kernel's sysfs files (see README.md)."""
