"""MicroPython drivers over ``machine``.

Every driver takes its ``Pin``/bus/peripheral objects (and, where timing
matters, a ``now_ms`` callable) in its constructor and imports nothing from
``machine`` itself, so tests drive them with fakes on any interpreter. The
factories in ``hw/mp/factories.py`` build the real objects from a board's
``hw`` options; ``hw/build.py`` lists them in its driver table.
"""
