"""Reset the chip, for the OTA agent's switch into a new slot and its rollback (``device/ota/agent.py``).

Here because ``machine`` is imported only under ``hw/mp/``; ``machine.reset()``
never returns (on the virtual board the VM process ends and the bridge boots
a fresh one with ``reset_cause() == HARD_RESET``).
"""

import machine  # type: ignore[import-not-found]


def reset_board() -> None:
    machine.reset()
