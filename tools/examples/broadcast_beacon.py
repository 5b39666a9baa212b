# A MicroPython broadcast beacon: with SO_BROADCAST set, send a few numbered beacons to the
# subnet's broadcast address and to 255.255.255.255, and print every reply heard.
#
#   broadcast_beacon.py [PORT [COUNT [ADDRESS...]]]   defaults: 7 2 10.0.0.255 255.255.255.255
#
# Port 7 is the echo service: every host on the subnet running it answers each beacon, so on
# the simulator its peer 10.0.0.1 replies to all of them:
#   pystack run --trace tools/examples/broadcast_beacon.py
# On a TUN (or TAP) device in namespace NS, with a kernel-side UDP socket bound to the port
# answering (a broadcast to 255.255.255.255 goes out on the only interface):
#   pystack run --link tun --netns NS tools/examples/broadcast_beacon.py 7 2
# After each beacon it listens for 500 ms. Prints one line per beacon and per reply, then a
# summary; the exit status is 0 even when nobody answered (a beacon needs no listener).
import errno
import socket
import sys
import time

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 2
TARGETS = sys.argv[3:] or ["10.0.0.255", "255.255.255.255"]
LISTEN_MS = 500

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("0.0.0.0", 0))
sent = replies = 0
for i in range(COUNT):
    for target in TARGETS:
        beacon = b"beacon %d to %s" % (i, target)
        s.sendto(beacon, (target, PORT))
        sent += 1
        print("sent", beacon)
        deadline = time.ticks_add(time.ticks_ms(), LISTEN_MS)
        while True:
            remaining = time.ticks_diff(deadline, time.ticks_ms())
            if remaining <= 0:
                break
            s.settimeout(remaining / 1000)
            try:
                data, source = s.recvfrom(512)
            except OSError as error:
                if error.args[0] != errno.ETIMEDOUT:
                    raise
                break
            replies += 1
            print("reply from", source, data)
s.close()
print("sent", sent, "beacons, heard", replies, "replies")
