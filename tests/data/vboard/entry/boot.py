# Placeholder boot.py for the virtual board tests (the real one is boards/mp/boot.py).
