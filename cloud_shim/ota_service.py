"""The cloud's OTA service: serves bundle chunks to devices and offers bundles through commands.

Devices ask on ``bp/{d}/ota/get`` (QoS 0) ``{"bundle": sha256 hex, "off", "n"}``;
the service answers on ``bp/{d}/ota/chunk`` (QoS 1) with one JSON header line
``{"bundle", "off", "n", "total"}``, ``"\\n"`` and the ``n`` bytes at ``off``
of the bundle file, or ``{"bundle", "error"}`` (unknown bundle, a range
outside the file, a malformed request). ``n`` is capped at ``MAX_CHUNK``
(the device's ``ota.chunk_bytes`` is at most that). The service is
stateless per device: a device resumes a download by asking for the offset
it has, on any connection.

``offer(issuer, device, path)`` registers the bundle and sends the command
``ota_update`` with ``{"bundle", "size", "version"}`` through a
``cloud_shim.commands.CommandIssuer``; the device's answer comes back as that
command's result, its progress as ``{"kind": "ota", ...}`` event records.

``bundles``: ``{sha256 hex: path}``, or a directory whose files are all
registered (by their sha256). ``add(path)`` registers one more.
``tls``: ``{"ca", "cert", "key"}`` file paths for a TLS broker port, or None.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from cloud_shim.service_client import ServiceClient
from device.link import topics

MAX_CHUNK = 65536
COUNTER_NAMES = ("requests", "chunks", "bytes", "errors", "malformed", "offers")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_version(path: Path) -> str:
    """The ``version`` of a bundle's manifest (read, not verified: the device verifies)."""
    from device.ota.bundlefmt import read_head

    with open(path, "rb") as f:
        manifest_bytes = read_head(f)[0]
    return str(json.loads(manifest_bytes)["version"])


class OtaService:
    def __init__(
        self,
        host: str,
        port: int,
        bundles: dict[str, str | Path] | str | Path | None = None,
        tls: dict[str, str] | None = None,
        client_id: str | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self.served: dict[str, int] = {}  # device -> chunks served
        if isinstance(bundles, dict):
            for sha, path in bundles.items():
                self._paths[sha] = Path(path)
        elif bundles is not None:
            for path in sorted(Path(bundles).iterdir()):
                if path.is_file():
                    self.add(path)
        self._mqtt = ServiceClient(
            host,
            port,
            client_id or "ota-service-%d" % id(self),
            [("%s/+/ota/get" % topics.PREFIX, 0)],
            self._on_message,
        )
        if tls is not None:
            self._mqtt._client.tls_set(ca_certs=tls["ca"], certfile=tls.get("cert"), keyfile=tls.get("key"))

    def start(self, timeout_s: float = 10.0) -> OtaService:
        self._mqtt.start(timeout_s)
        return self

    def stop(self) -> None:
        self._mqtt.stop()

    def __enter__(self) -> OtaService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, path: str | Path) -> str:
        """Serve the bundle file at ``path``; returns its sha256 hex."""
        path = Path(path)
        sha = file_sha256(path)
        with self._lock:
            self._paths[sha] = path
        return sha

    def offer(self, issuer: Any, device: str, path: str | Path, ttl_ms: int = 10 * 60 * 1000) -> str:
        """Offer the bundle at ``path`` to ``device`` (command ``ota_update``); returns the command id."""
        sha = self.add(path)
        args = {"bundle": sha, "size": Path(path).stat().st_size, "version": bundle_version(Path(path))}
        self.counters["offers"] += 1
        cid: str = issuer.issue(device, "ota_update", args, ttl_ms=ttl_ms)
        return cid

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counters)
        out["served"] = dict(self.served)
        return out

    # -- paho's thread ---------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        device, rest = topics.split_topic(topic)
        if device is None or rest != "ota/get":
            return
        self.counters["requests"] += 1
        try:
            req = json.loads(payload)
            sha, off, n = req["bundle"], req["off"], req["n"]
            if not isinstance(sha, str) or not isinstance(off, int) or not isinstance(n, int):
                raise ValueError("bad field types")
        except (ValueError, KeyError, TypeError):
            self.counters["malformed"] += 1
            return  # no bundle id to answer to
        body = self._answer(sha, off, n)
        self._mqtt.publish("%s/%s/ota/chunk" % (topics.PREFIX, device), body, 1, False)
        if b'"error"' not in body.split(b"\n", 1)[0]:
            self.served[device] = self.served.get(device, 0) + 1

    def _answer(self, sha: str, off: int, n: int) -> bytes:
        with self._lock:
            path = self._paths.get(sha)
        if path is None:
            return self._error(sha, "unknown bundle")
        try:
            total = path.stat().st_size
            if off < 0 or n <= 0 or off >= total:
                return self._error(sha, "range %d+%d outside the bundle (%d bytes)" % (off, n, total))
            with open(path, "rb") as f:
                f.seek(off)
                data = f.read(min(n, MAX_CHUNK, total - off))
        except OSError as exc:
            return self._error(sha, "cannot read the bundle: %s" % exc)
        self.counters["chunks"] += 1
        self.counters["bytes"] += len(data)
        header = {"bundle": sha, "off": off, "n": len(data), "total": total}
        return json.dumps(header).encode() + b"\n" + data

    def _error(self, sha: str, text: str) -> bytes:
        self.counters["errors"] += 1
        return json.dumps({"bundle": sha, "error": text}).encode() + b"\n"
