# A MicroPython UDP echo client: send numbered datagrams to an echo service (RFC 862, port 7),
# check that every reply is exactly the datagram sent, and time it.
#
#   udp_echo_client.py [HOST [PORT [COUNT [SIZE]]]]   defaults: peer.sim 7 3, "hello N" messages
#
# On the simulator (its peer 10.0.0.1, alias peer.sim, runs an echo service):
#   pystack run tools/examples/udp_echo_client.py
#   pystack run --trace --impair loss=30%,seed=2 tools/examples/udp_echo_client.py peer.sim 7 10
# On a TUN (or TAP) device in namespace NS, against a UDP echo server on the kernel side:
#   pystack run --link tun --netns NS tools/examples/udp_echo_client.py 10.0.0.1 7 3 20000
# On a board: HOST is the address of any host running a UDP echo service.
# Each datagram waits at most one second for its reply. Prints one line per datagram and a
# summary; the exit status is 1 when no reply came back or a reply was not what was sent.
import errno
import socket
import sys
import time

HOST = sys.argv[1] if len(sys.argv) > 1 else "peer.sim"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 7
COUNT = int(sys.argv[3]) if len(sys.argv) > 3 else 3
SIZE = int(sys.argv[4]) if len(sys.argv) > 4 else 0  # 0: short "hello N" messages
TIMEOUT_MS = 1000
PATTERN = bytes(range(256))


def message(number):
    head = b"hello %d" % number
    if len(head) >= SIZE:
        return head if SIZE == 0 else head[:SIZE]
    head += b":"
    rest = SIZE - len(head)
    start = number % 256
    return head + (PATTERN * (rest // 256 + 2))[start : start + rest]


def show(data):
    return data if len(data) <= 32 else str(len(data)) + " bytes"


def earlier(data, number):
    # A reply to an earlier datagram that came after its timeout (or a duplicate).
    for older in range(number):
        if data == message(older):
            return older
    return -1


address = socket.getaddrinfo(HOST, PORT)[0][-1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
received = lost = corrupt = 0
for i in range(COUNT):
    sent = message(i)
    start = time.ticks_ms()
    deadline = time.ticks_add(start, TIMEOUT_MS)
    s.sendto(sent, address)
    while True:
        remaining = time.ticks_diff(deadline, time.ticks_ms())
        if remaining <= 0:
            print("no reply to", i)
            lost += 1
            break
        s.settimeout(remaining / 1000)
        try:
            data, source = s.recvfrom(len(sent) + 64)
        except OSError as error:
            if error.args[0] != errno.ETIMEDOUT:
                raise
            print("no reply to", i)
            lost += 1
            break
        if data == sent:
            elapsed = time.ticks_diff(time.ticks_ms(), start)
            print("echo from", source, show(data), "in", elapsed, "ms")
            received += 1
            break
        older = earlier(data, i)
        if older >= 0:
            print("late reply to", older)
        else:
            print("corrupt reply to", i, "from", source, show(data))
            corrupt += 1
s.close()
print("sent", COUNT, "received", received, "lost", lost, "corrupt", corrupt)
if received == 0 or corrupt:
    sys.exit(1)
