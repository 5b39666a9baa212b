# A MicroPython multicast listener: join a group with IP_ADD_MEMBERSHIP (the stack sends an
# IGMP membership report), print the datagrams sent to the group's port until none came for
# TIMEOUT seconds or COUNT arrived, then leave with IP_DROP_MEMBERSHIP (an IGMP leave).
#
#   multicast_listener.py [GROUP [PORT [TIMEOUT [COUNT]]]]   defaults: 239.1.2.3 5007 2 10
#
# On the simulator nobody sends to the group: --trace shows the join and the leave, and the
# listener reports that nothing came:
#   pystack run --trace tools/examples/multicast_listener.py 239.1.2.3 5007 0.5
# On a TUN (or TAP) device in namespace NS, with the kernel side sending to the group
# (e.g. a UDP socket with IP_MULTICAST_IF set to 10.0.0.1, or a route 239.0.0.0/8 via the device):
#   pystack run --link tun --netns NS tools/examples/multicast_listener.py 239.1.2.3 5007 10 3
# The ip_mreq option value is 8 bytes: the group address, then the interface (0.0.0.0: any).
import errno
import socket
import struct
import sys

GROUP = sys.argv[1] if len(sys.argv) > 1 else "239.1.2.3"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 5007
TIMEOUT_MS = int(float(sys.argv[3]) * 1000) if len(sys.argv) > 3 else 2000
COUNT = int(sys.argv[4]) if len(sys.argv) > 4 else 10


def address_bytes(text):
    return bytes([int(part) for part in text.split(".")])


mreq = struct.pack("4s4s", address_bytes(GROUP), address_bytes("0.0.0.0"))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", PORT))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("joined", GROUP, "port", PORT)
s.settimeout(TIMEOUT_MS / 1000)
heard = 0
while heard < COUNT:
    try:
        data, source = s.recvfrom(1500)
    except OSError as error:
        if error.args[0] != errno.ETIMEDOUT:
            raise
        print("nothing for", TIMEOUT_MS, "ms")
        break
    heard += 1
    print("from", source, data)
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
print("left", GROUP, "after", heard, "datagrams")
s.close()
