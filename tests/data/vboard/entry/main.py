# Placeholder main.py for the virtual board tests: idles forever like a running device.
import time

while True:
    time.sleep_ms(200)
