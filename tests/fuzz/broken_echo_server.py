"""A planted broken service for ``pystack fuzz --target kernel`` (tests/fuzz/test_service.py).

An echo server that stops accepting after its first few connections (it closes its listening
socket and then idles until it is stopped): the campaign's health check after a case must find
it. Run as ``python broken_echo_server.py PORT LIMIT``; it ends by itself after 60 s.
"""

from __future__ import annotations

import socket
import sys
import time

port, limit = int(sys.argv[1]), int(sys.argv[2])
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(8)
listener.settimeout(1.0)
started = time.monotonic()
served = 0
while served < limit and time.monotonic() - started < 60:
    try:
        client, _ = listener.accept()
    except TimeoutError:
        continue
    served += 1
    client.settimeout(1.0)
    try:
        while data := client.recv(4096):
            client.sendall(data)
    except OSError:
        pass
    client.close()
listener.close()  # broken from here on: connections are refused
while time.monotonic() - started < 60:
    time.sleep(0.2)
