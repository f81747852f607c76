"""A local stand-in for Slack's Socket Mode WebSocket endpoint (RFC 6455, plain ws:// on
127.0.0.1, port 0), enough for slack_sdk's built-in Socket Mode client.

    with SocketModeFake() as ws:
        slack.script("apps.connections.open", Reply(body={"ok": True, "url": ws.url}))
        ... start the Socket Mode handler ...
        ws.wait_connected()
        ws.send_envelope("slash_commands", payload)
        ack = ws.wait_ack(envelope_id)

It greets each connection with `{"type": "hello"}`, answers pings, and records every JSON
message the client sends (the envelope acknowledgements).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class SocketModeFake:
    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self.port = int(self._listener.getsockname()[1])
        self.received: list[dict[str, Any]] = []
        self._client: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=test"

    def __enter__(self) -> SocketModeFake:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()
        if self._client is not None:
            self._client.close()

    # -- what tests do ---------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._client is None:
            if time.monotonic() > deadline:
                raise AssertionError("the Socket Mode client never connected")
            time.sleep(0.01)

    def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        envelope_id = f"env-{next(self._ids)}"
        self._send_text(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                    "retry_attempt": 0,
                    "retry_reason": "",
                }
            )
        )
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.received):
                if message.get("envelope_id") == envelope_id:
                    return message
            time.sleep(0.01)
        raise AssertionError(f"no acknowledgement of {envelope_id}; got {self.received}")

    # -- the protocol ----------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._handshake(client):
                self._client = client
                self._send_text(json.dumps({"type": "hello", "num_connections": 1}))
                threading.Thread(target=self._read, args=(client,), daemon=True).start()

    @staticmethod
    def _handshake(client: socket.socket) -> bool:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = client.recv(4096)
            if not chunk:
                return False
            request += chunk
        headers = {}
        for line in request.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        client.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        return True

    def _send_frame(self, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([len(data)])
        elif len(data) < 65536:
            header += bytes([126]) + struct.pack("!H", len(data))
        else:
            header += bytes([127]) + struct.pack("!Q", len(data))
        assert self._client is not None
        with self._send_lock:
            self._client.sendall(header + data)

    def _send_text(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def _read(self, client: socket.socket) -> None:
        try:
            while True:
                first, second = _read_exact(client, 2)
                opcode = first & 0x0F
                length = second & 0x7F
                if length == 126:
                    length = struct.unpack("!H", _read_exact(client, 2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", _read_exact(client, 8))[0]
                mask = _read_exact(client, 4) if second & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exact(client, length)))
                if opcode == 0x9:  # ping
                    self._send_frame(0xA, data)
                elif opcode == 0x8:  # close
                    return
                elif opcode == 0x1:
                    self.received.append(json.loads(data.decode()))
        except (OSError, ConnectionError, ValueError):
            return


def _read_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data
