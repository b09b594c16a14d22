"""The environment: every side effect the runtime may use, passed in at boot.

Only a board's entry point and the host tools build a real one; tests build
one from fakes. Nothing in ``device/`` creates hardware, clocks or stores at
import time.
"""


class Env:
    """What the runtime may touch.

    * ``clock``  -- see ``device.clock`` (``now_ms``, ``wall_ms``, ``sleep_ms``)
    * ``store``  -- see ``device.store.base.Store``
    * ``hw``     -- ``hw.registry.HwSet``: sensors and actuators by name
    * ``rand``   -- ``device.rand.Rand`` (seeded, portable)
    * ``board``  -- the validated board profile (a dict)
    * ``net``    -- network access; ``None`` runs the device offline
    """

    def __init__(self, clock, store, hw, rand, board=None, net=None) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.store = store
        self.hw = hw
        self.rand = rand
        self.board = board if board is not None else {}
        self.net = net
