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


def encode_record(device_id: str, record, wall_ms) -> bytes:  # type: ignore[no-untyped-def]
    """The wire form of a ``device.store.base.Record``; ``wall_ms`` is its creation wall time or None."""
    return json.dumps(
        {
            "dev": device_id,
            "boot": record.boot,
            "seq": record.seq,
            "lane": record.lane,
            "t_ms": record.created_ms,
            "wall_ms": wall_ms,
            "p": record.payload,
        }
    ).encode()
