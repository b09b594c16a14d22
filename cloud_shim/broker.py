"""Run a private Debian ``mosquitto`` on a free loopback port (tests, benchmarks, the simulator).

As root mosquitto drops to the ``mosquitto`` user, so its config and any TLS
files live in a world-readable temporary directory (see FIELD-NOTES.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "mosquitto is not installed: run `apt-get install -y mosquitto` (Debian/Ubuntu)"


class BrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerTls:
    """Files for a TLS listener. ``require_certificate``: mutual TLS."""

    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_path() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if found is None:
        raise BrokerError(INSTALL_HINT)
    return found


class Mosquitto:
    """One broker process. ``start()`` returns once it accepts TCP; ``stop()``/``kill()``; ``start()`` again restarts.

    ``port`` stays the same across restarts. ``tls`` adds TLS on ``tls_port`` (also fixed).
    """

    def __init__(
        self, port: int | None = None, tls: BrokerTls | None = None, tls_port: int | None = None, extra_config: str = ""
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        self.tls_port = (tls_port or free_port()) if tls else None
        self.extra_config = extra_config
        self._dir = Path(tempfile.mkdtemp(prefix="bp-mosquitto-"))
        os.chmod(self._dir, 0o755)
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self._dir / "mosquitto.log"

    def _config(self) -> Path:
        lines = [
            "persistence false",
            "allow_anonymous true",
            "per_listener_settings false",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
            "log_dest file " + str(self.log_path),
            "log_type error",
            "log_type warning",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls is not None:
            names = {}
            for label, src in (("ca", self.tls.ca), ("cert", self.tls.cert), ("key", self.tls.key)):
                dst = self._dir / (label + ".pem")
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o644)
                names[label] = dst
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {names['ca']}",
                f"certfile {names['cert']}",
                f"keyfile {names['key']}",
            ]
            if self.tls.require_certificate:
                lines += ["require_certificate true", "use_identity_as_username true"]
        if self.extra_config:
            lines.append(self.extra_config)
        path = self._dir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        os.chmod(path, 0o644)
        self.log_path.touch()
        os.chmod(self.log_path, 0o666)
        return path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        config = self._config()
        self._proc = subprocess.Popen(
            [mosquitto_path(), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise BrokerError(
                    f"mosquitto exited with {self._proc.returncode}: {err.strip()} "
                    f"(log: {self.log_path.read_text().strip()})"
                )
            if all(_accepts(p) for p in ports):
                return
            time.sleep(0.01)
        self.stop()
        raise BrokerError(f"mosquitto did not accept connections on {ports} within {timeout_s} s")

    def stop(self) -> None:
        """Terminate (SIGTERM) and wait."""
        self._end(kill=False)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without closing anything politely."""
        self._end(kill=True)

    def _end(self, kill: bool) -> None:
        proc = self._proc
        self._proc = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr:
            proc.stderr.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
