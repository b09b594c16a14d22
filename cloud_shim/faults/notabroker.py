"""Something that is not an MQTT broker at a broker's port: where a "wrong" DNS answer points.

It answers like a web server would (an HTTP 400), so a device that dials it
must notice that no CONNACK comes and forget the address.
"""

from __future__ import annotations

import socket
import threading


class NotABroker:
    """Answers like a web server on a loopback address other than 127.0.0.1, at the broker's port.

    The endpoint's port is fixed, so the "wrong" address differs by IP: the first free one of
    127.0.0.2 .. 127.0.0.40 (another test process may hold the same port on one of them).
    """

    def __init__(self, port: int) -> None:
        for last in range(2, 41):
            sock = socket.socket()
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((f"127.0.0.{last}", port))
                sock.listen(16)
            except OSError:
                sock.close()
                continue
            self.sock = sock
            self.addr = f"127.0.0.{last}"
            break
        else:
            raise OSError(f"no free loopback address for port {port}")
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
