# Resolve host names with socket.getaddrinfo, as MicroPython does it (one IPv4 address per name).
#
#   dns_lookup.py [NAME...]   default: example.com peer.sim
#
# On the simulator (its DNS server at 10.0.0.1 knows peer.sim, example.com and --hosts names):
#   pystack run tools/examples/dns_lookup.py example.com no.such.name
# On a TUN (or TAP) device in namespace NS, asking a DNS server on the kernel side:
#   pystack run --link tun --netns NS --dns 10.0.0.1 tools/examples/dns_lookup.py kernel.test
# Prints "NAME ADDRESS" or "NAME error CODE": MicroPython raises OSError with a negative lwIP
# code (-2 when the name is not found or no server answers). Exit status 1 if any name failed.
import socket
import sys

names = sys.argv[1:] or ["example.com", "peer.sim"]
failed = 0
for name in names:
    try:
        address = socket.getaddrinfo(name, 0)[0][-1][0]
    except OSError as error:
        print(name, "error", error.args[0])
        failed += 1
        continue
    print(name, address)
if failed:
    sys.exit(1)
