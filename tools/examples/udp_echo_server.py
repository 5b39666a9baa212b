# A MicroPython UDP echo server (RFC 862): bind a port, send every datagram back to its sender,
# stop after COUNT datagrams or when none came for TIMEOUT seconds.
#
#   udp_echo_server.py [PORT [COUNT [TIMEOUT]]]   defaults: 7000 10 5
#
# On the simulator nobody sends to it, so it waits, reports that nothing came and stops:
#   pystack run tools/examples/udp_echo_server.py 7000 1 0.5
# On a TUN (or TAP) device in namespace NS (this host is 10.0.0.2, the kernel side 10.0.0.1):
#   pystack run --link tun --netns NS tools/examples/udp_echo_server.py 7000 3 10
# then from the kernel side:  ip netns exec NS nc -u 10.0.0.2 7000
# Prints "listening on port P" once bound, one line per datagram served and a summary.
import errno
import socket
import sys
import time

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7000
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 10
TIMEOUT_MS = int(float(sys.argv[3]) * 1000) if len(sys.argv) > 3 else 5000
MAX_DATAGRAM = 65507  # the most one IPv4 datagram carries; lower it on a board short of RAM


def show(data):
    return data if len(data) <= 32 else str(len(data)) + " bytes"


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", PORT))
s.settimeout(TIMEOUT_MS / 1000)
print("listening on port", PORT)
served = 0
received_bytes = 0
start = time.ticks_ms()
while served < COUNT:
    try:
        data, source = s.recvfrom(MAX_DATAGRAM)
    except OSError as error:
        if error.args[0] != errno.ETIMEDOUT:
            raise
        print("nothing for", TIMEOUT_MS, "ms")
        break
    s.sendto(data, source)
    served += 1
    received_bytes += len(data)
    print("served", served, "from", source, show(data))
s.close()
elapsed = time.ticks_diff(time.ticks_ms(), start)
print("served", served, "datagrams,", received_bytes, "bytes in", elapsed, "ms")
