# A MicroPython TLS client: connect, wrap the socket with ssl (verifying the server's certificate
# against a CA), send lines and read them back from a TLS echo server.
#
#   tls_client.py [HOST [PORT [CAFILE]]]   defaults: peer.sim 443 and pystack's test CA
#
# On the simulator the peer runs a TLS echo service on 443 with a certificate for peer.sim:
#   pystack run tools/examples/tls_client.py
# On a TUN device in namespace NS, against a TLS echo server on the kernel side (its certificate
# signed by CAFILE, for the name HOST):
#   pystack run --link tun --netns NS tools/examples/tls_client.py 10.0.0.1 4443 ca.pem
# Prints the cipher, each echoed line, and a summary.
import socket
import ssl
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else "peer.sim"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 443
here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
CAFILE = sys.argv[3] if len(sys.argv) > 3 else here + "/../../pystack/services/certs/ca.der"

with open(CAFILE, "rb") as f:
    ca = f.read()
address = socket.getaddrinfo(HOST, PORT)[0][-1]
s = socket.socket()
s.connect(address)
tls = ssl.wrap_socket(s, server_hostname=HOST, cert_reqs=ssl.CERT_REQUIRED, cadata=ca)
print("connected to", HOST, address, "with", tls.cipher())
ok = 0
for number in range(3):
    line = b"hello over TLS %d\n" % number
    tls.write(line)
    reply = tls.readline()
    print("echo", reply)
    ok += reply == line
tls.close()
print("echoed", ok, "of 3 lines")
