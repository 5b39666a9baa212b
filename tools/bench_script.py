# The usocket row of tools/bench.py: a MicroPython script serving discard (9), chargen (19, SIZE
# bytes then close) and echo (7) with plain blocking sockets, one connection at a time, through
# select.poll on the three listeners. It stops after CONNECTIONS connections.
#
#   bench_script.py SIZE CONNECTIONS
#
# Run by tools/bench.py as: pystack run --link tun --netns NS tools/bench_script.py SIZE 3
import select
import socket
import sys

SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 10000000
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 3

listeners = {}
poller = select.poll()
for port in (7, 9, 19):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(2)
    listeners[server] = port
    poller.register(server, select.POLLIN)
print("ready", flush=True)
buffer = bytearray(65536)
block = b"y" * 65536
for _ in range(CONNECTIONS):
    server, _events = poller.poll()[0]
    conn, _peer = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = listeners[server]
    if port == 9:
        while conn.recv(65536):
            pass
    elif port == 19:
        sent = 0
        while sent < SIZE:
            sent += conn.send(block[: min(len(block), SIZE - sent)])
    else:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
    conn.close()
for server in listeners:
    server.close()
