"""A small TCP server on kernel sockets: what ``serve echo PORT`` runs on the kernel target.

On pystack ``serve echo PORT`` attaches pystack's echo service to the stack under test; on the
kernel target the same line starts this server on a listening socket that the caller made inside
the target's namespace (a socket belongs to its namespace for ever, whichever thread uses it).
``pystack fuzz --target kernel`` uses it as its default service under test.

One daemon thread runs a ``select`` loop over the listener and its clients, so nothing blocks:
``echo`` (RFC 862) sends back what it reads, ``discard`` (RFC 863) drops it. Bounded: at most
``MAX_CLIENTS`` connections (when full, the one idle longest is closed to make room: a fuzzer
leaves connections half-open, and a newcomer must still be served), a client idle for
``IDLE_LIMIT`` seconds is closed, and at most ``BUFFER_LIMIT`` bytes not yet echoed per client
(reading pauses until the peer takes them: TCP's own back-pressure).
``stop()`` ends the thread and closes every socket it holds.
Entry points: ``EchoServer``, ``SERVICES``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

SERVICES = ("echo", "discard")
MAX_CLIENTS = 64
BUFFER_LIMIT = 1 << 16  # bytes read but not yet echoed, per client
LOOP_PERIOD = 0.05  # seconds a select waits before it looks at ``stop`` again
IDLE_LIMIT = 5.0  # seconds a client may stay silent before it is closed


class EchoServer:
    """Serves ``listener`` (a bound, listening, non-blocking socket) in a daemon thread."""

    def __init__(self, listener: socket.socket, service: str = "echo") -> None:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r} (known: {', '.join(SERVICES)})")
        self.listener = listener
        self.service = service
        self.accepted = 0  # connections taken, for a caller's report
        self.clients: dict[socket.socket, bytearray] = {}
        self.active: dict[socket.socket, float] = {}  # client -> when it last did something
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kernel-echo", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                readers = [self.listener, *self.clients]
                writers = [client for client, pending in self.clients.items() if pending]
                # a client with a full buffer is not read until the peer takes some of it
                readers = [
                    r for r in readers if r is self.listener or len(self.clients[r]) < BUFFER_LIMIT
                ]
                readable, writable, _ = select.select(readers, writers, [], LOOP_PERIOD)
                for ready in readable:
                    if ready is self.listener:
                        self._accept()
                    else:
                        self._read(ready)
                for ready in writable:
                    if ready in self.clients:
                        self._write(ready)
                now = time.monotonic()
                for client, when in list(self.active.items()):
                    if now - when > IDLE_LIMIT:
                        self._drop(client)
        except (OSError, ValueError):
            pass  # the sockets were closed under us: stop() or the sandbox is going away
        finally:
            self._close_all()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except (BlockingIOError, ConnectionError):
            return
        self.accepted += 1
        if len(self.clients) >= MAX_CLIENTS:
            self._drop(min(self.active, key=self.active.__getitem__))  # the one idle longest
        client.setblocking(False)
        self.clients[client] = bytearray()
        self.active[client] = time.monotonic()

    def _read(self, client: socket.socket) -> None:
        try:
            data = client.recv(BUFFER_LIMIT - len(self.clients[client]))
        except BlockingIOError:
            return
        except OSError:
            data = b""  # reset by the peer: the connection is over
        if not data:
            self._drop(client)
            return
        self.active[client] = time.monotonic()
        if self.service == "echo":
            self.clients[client] += data

    def _write(self, client: socket.socket) -> None:
        pending = self.clients[client]
        try:
            sent = client.send(pending)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        del pending[:sent]
        self.active[client] = time.monotonic()

    def _drop(self, client: socket.socket) -> None:
        self.clients.pop(client, None)
        self.active.pop(client, None)
        with contextlib.suppress(OSError):
            client.close()

    def _close_all(self) -> None:
        for client in list(self.clients):
            self._drop(client)
        with contextlib.suppress(OSError):
            self.listener.close()

    def stop(self) -> None:
        """End the thread and close every socket (idempotent)."""
        self._stopping.set()
        self._thread.join(5 * LOOP_PERIOD + 1.0)
        self._close_all()
