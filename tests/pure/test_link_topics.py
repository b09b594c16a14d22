"""The outbox record envelope on the wire (``topics.encode_record``)."""

import json

from device.compat import IS_MICROPYTHON
from device.link import topics
from device.store.base import Record


def _record(payload):  # type: ignore[no-untyped-def]
    return Record(42, "telemetry", 3, 17000, payload, 10)


def _expected(device_id, record, wall):  # type: ignore[no-untyped-def]
    return {
        "dev": device_id,
        "boot": record.boot,
        "seq": record.seq,
        "lane": record.lane,
        "t_ms": record.created_ms,
        "wall_ms": wall,
        "p": record.payload,
    }


def test_the_envelope_decodes_to_every_field():
    payload = {"temp_c": 20.5, "heat": True, "mode": "heat", "note": None, "list": [1, 2]}
    for device_id in ("dev1", 'we"ird\\id'):
        for wall in (None, 1760918400123):
            record = _record(payload)
            out = topics.encode_record(device_id, record, wall)
            assert json.loads(out) == _expected(device_id, record, wall)
            assert out == topics.encode_record(device_id, record, wall, topics.device_json(device_id))


def test_the_envelope_is_the_bytes_a_dict_gave_on_cpython():
    if IS_MICROPYTHON:
        return  # MicroPython dicts keep no order: there the old bytes were never fixed
    record = _record({"b": 1, "a": "\u00e9", "c": [True, None, 1.5]})
    for wall in (None, 1760918400123):
        expected = json.dumps(_expected("d-1", record, wall)).encode()
        assert topics.encode_record("d-1", record, wall) == expected
