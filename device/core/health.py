"""The degraded-mode signal common to every app (pure).

One mode for the whole device, shown on its status LED and in ``Device.status()``:

* ``"fault"``      -- an app reports a fault (its ``health()`` starts with ``"fault"``):
  someone should look at the device, whatever the network does;
* ``"cloud_ok"``   -- no fault and the link is connected (``online`` or ``degraded``:
  a fallback address still reaches the cloud);
* ``"local_only"`` -- no fault, no cloud: the device works on its own (no link at all,
  or the link is offline, resolving or connecting).
"""

CLOUD_OK = "cloud_ok"
LOCAL_ONLY = "local_only"
FAULT = "fault"
MODES = (CLOUD_OK, LOCAL_ONLY, FAULT)

_CONNECTED = ("online", "degraded")  # device.core.linkstate.CONNECTED, without importing the link


def is_fault(app_health: object) -> bool:
    """An app's ``health()`` text names a fault ("fault:sensor"), not a degradation ("degraded:store")."""
    return isinstance(app_health, str) and app_health.startswith("fault")


def mode(link_state: str | None, app_healths: list) -> str:
    """``link_state``: the link's state name, or None when the device has no link."""
    for app_health in app_healths:
        if is_fault(app_health):
            return FAULT
    if link_state in _CONNECTED:
        return CLOUD_OK
    return LOCAL_ONLY


def device_mode(device) -> str:  # type: ignore[no-untyped-def]
    """``mode`` of a ``device.boot.Device``: its link's state and its apps' health."""
    link = device.link
    return mode(link.state.state if link is not None else None, [app.health() for app in device.apps])
