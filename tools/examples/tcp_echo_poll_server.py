# A MicroPython TCP echo server for several clients at once: non-blocking sockets and
# select.poll, the way a board serves many connections without threads.
#
#   tcp_echo_poll_server.py [PORT [CLIENTS [IDLE]]]   defaults: 7007, serve forever, 30 s idle
#
# It stops after CLIENTS clients have come and gone (0: never), or when nothing happened for
# IDLE seconds. On the simulator nobody connects, so it waits IDLE seconds and stops:
#   pystack run tools/examples/tcp_echo_poll_server.py 7007 1 0.5
# On a TUN device in namespace NS:
#   pystack run --link tun --netns NS tools/examples/tcp_echo_poll_server.py 7007 5
# then from the kernel side, several at once:  ip netns exec NS nc 10.0.0.2 7007
import select
import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7007
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 0
IDLE_MS = int(float(sys.argv[3]) * 1000) if len(sys.argv) > 3 else 30000
BACKLOG = 64  # connections that may wait for accept(); lwIP resets any more (ECONNRESET)

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", PORT))
server.listen(BACKLOG)
server.setblocking(False)
poller = select.poll()
poller.register(server, select.POLLIN)
pending = {}  # client socket -> bytes still to echo back
done = 0
echoed = 0
most = 0
print("echo server on port", PORT)
while CLIENTS == 0 or done < CLIENTS:
    events = poller.poll(IDLE_MS)
    if not events:
        print("idle for", IDLE_MS, "ms")
        break
    for sock, flags in events:
        if sock is server:
            while True:  # take every waiting connection: a full accept queue resets newcomers
                try:
                    client, peer = server.accept()
                except OSError:  # EAGAIN: none left
                    break
                client.setblocking(False)
                pending[client] = b""
                poller.register(client, select.POLLIN)
            most = max(most, len(pending))
            continue
        finished = flags & (select.POLLHUP | select.POLLERR)
        if flags & select.POLLIN and not finished:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if data:
                pending[sock] += data
            else:
                finished = True
        if pending.get(sock) and not finished:
            try:
                sent = sock.send(pending[sock])
            except OSError as error:
                sent = 0
                finished = error.args[0] != 11  # EAGAIN: try again when writable
            echoed += sent
            pending[sock] = pending[sock][sent:]
        if finished:
            if pending[sock] and not flags & select.POLLERR:
                sock.setblocking(True)  # the client sent its last bytes and a FIN: finish
                try:
                    echoed += sock.write(pending[sock]) or 0
                except OSError:
                    pass
            poller.unregister(sock)
            sock.close()
            del pending[sock]
            done += 1
        elif sock in pending:
            poller.modify(sock, select.POLLIN | (select.POLLOUT if pending[sock] else 0))
for sock in pending:
    sock.close()
server.close()
print("served", done, "clients, at most", most, "at once, echoed", echoed, "bytes")
