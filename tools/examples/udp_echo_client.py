# A MicroPython UDP echo client: send a few datagrams to the echo service and time the replies.
# Runs unmodified on a board, and under pystack:  pystack run tools/examples/udp_echo_client.py
import socket
import time

HOST = "peer.sim"  # on a board, the address of any host running an echo service (port 7)
PORT = 7

address = socket.getaddrinfo(HOST, PORT)[0][-1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for i in range(3):
    message = b"hello %d" % i
    start = time.ticks_ms()
    s.sendto(message, address)
    try:
        data, source = s.recvfrom(512)
    except OSError as error:
        print("no reply:", error)
        continue
    print("echo from", source, data, "in", time.ticks_diff(time.ticks_ms(), start), "ms")
s.close()
