"""The MQTT topic layout (see ``device/link/__init__.py``) and the outbox record envelope."""

import json

PREFIX = "bp"
LANE_ORDER = ("event", "result", "telemetry")  # drain priority: first lane first


def out_topic(device_id: str, lane: str) -> str:
    return PREFIX + "/" + device_id + "/out/" + lane


def reported_topic(device_id: str) -> str:
    return PREFIX + "/" + device_id + "/shadow/reported"


def desired_topic(device_id: str) -> str:
    return PREFIX + "/" + device_id + "/shadow/desired"


def command_topic(device_id: str) -> str:
    return PREFIX + "/" + device_id + "/cmd"


def status_topic(device_id: str) -> str:
    return PREFIX + "/" + device_id + "/status"


def diag_topic(device_id: str) -> str:
    return PREFIX + "/" + device_id + "/diag"


def split_topic(topic: str) -> tuple:
    """``"bp/dev1/out/event"`` -> ``("dev1", "out/event")``; ``(None, None)`` when not ours."""
    if not topic.startswith(PREFIX + "/"):
        return None, None
    rest = topic[len(PREFIX) + 1 :]
    i = rest.find("/")
    if i <= 0:
        return None, None
    return rest[:i], rest[i + 1 :]


# The envelope, fields in this order (json.dumps of the dict it replaces gave the same bytes on
# CPython): formatting it beats building a dict and walking it with the encoder per record.
_ENVELOPE = '{"dev": %s, "boot": %d, "seq": %d, "lane": "%s", "t_ms": %d, "wall_ms": %s, "p": '


def device_json(device_id: str) -> str:
    """``device_id`` as a JSON string, for ``encode_record`` (made once per engine)."""
    return json.dumps(device_id)


def encode_record(device_id: str, record, wall_ms, dev_json=None) -> bytes:  # type: ignore[no-untyped-def]
    """The wire form of a ``device.store.base.Record``; ``wall_ms`` is its creation wall time or None.

    ``dev_json``: ``device_json(device_id)`` when the caller keeps it. Lanes are plain
    names (``LANE_ORDER``), so the lane needs no escaping.
    """
    head = _ENVELOPE % (
        dev_json or json.dumps(device_id),
        record.boot,
        record.seq,
        record.lane,
        record.created_ms,
        "null" if wall_ms is None else str(wall_ms),
    )
    return (head + json.dumps(record.payload) + "}").encode()
