"""Over-the-air updates: signed bundles, two slots, trial boot, automatic rollback.

A bundle (``bundlefmt``) is a signed manifest (``manifest``: ECDSA P-256 via
``ecdsa``, checked against the device's public key, board, target and running
version) followed by the files' bytes. The device downloads it in chunks into
``ota/dl.part`` (resumable), stages it in the inactive slot ``ota/a`` or
``ota/b`` (``slots``; ``bundle.json`` written last marks a slot complete),
switches the boot record ``ota/boot.json`` (``record``, atomic) to a trial of
that slot, and boots it. ``bootsel`` picks the slot at every boot and rolls a
trial back after a crash, a watchdog reset or too many boots; ``agent``
confirms the trial once the health gate passes. The factory image in the root
is never written by OTA, so a device can always fall back to it.
"""
