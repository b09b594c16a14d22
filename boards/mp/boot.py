"""Runs first at every boot of a MicroPython board, before main.py. Keep it tiny.

Quiets the ESP-IDF debug output on the UART (it would interleave with the
REPL that ``mpremote`` drives) and compacts the heap for main.py. No
network is started here: the device runs with none.
"""

import gc

try:
    import esp  # type: ignore[import-not-found]

    esp.osdebug(None)
except ImportError:  # not an ESP32 (Pico W, the unix port, the virtual board)
    pass

gc.collect()
