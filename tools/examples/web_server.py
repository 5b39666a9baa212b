# A tiny MicroPython web server: one connection at a time, blocking sockets, HTTP/1.0 style
# (one request per connection). It answers "/" with a small page and anything else with 404.
#
#   web_server.py [PORT [COUNT [TIMEOUT]]]   defaults: 80, serve forever, wait forever
#
# On the simulator nobody browses to it, so give it a timeout; it reports that nothing came:
#   pystack run tools/examples/web_server.py 80 1 0.5
# On a TUN device in namespace NS (this host is 10.0.0.2, the kernel side 10.0.0.1):
#   pystack run --link tun --netns NS tools/examples/web_server.py 8080 3
# then from the kernel side:  ip netns exec NS curl http://10.0.0.2:8080/
# Prints one line per request served.
import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 80
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 0  # 0: forever
TIMEOUT = float(sys.argv[3]) if len(sys.argv) > 3 else None

PAGE = """<!DOCTYPE html>
<html><head><title>pystack</title></head>
<body><h1>Hello from MicroPython on pystack</h1><p>Request number %d.</p></body></html>
"""

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", PORT))
server.listen(2)
server.settimeout(TIMEOUT)
print("listening on port", PORT)
served = 0
while COUNT == 0 or served < COUNT:
    try:
        client, peer = server.accept()
    except OSError as error:
        print("no more clients:", error)
        break
    client.settimeout(10)
    try:
        request = client.readline()
        while client.readline() not in (b"\r\n", b""):
            pass  # the headers; this server does not need them
        parts = request.split()
        path = parts[1].decode() if len(parts) > 1 else "/"
        served += 1
        if path == "/":
            status, body = "200 OK", (PAGE % served).encode()
        else:
            status, body = "404 Not Found", b"not found\n"
        client.write(
            b"HTTP/1.0 %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (status, len(body))
        )
        client.write(body)
        print("served", path, "to", peer, status)
    except OSError as error:
        print("client", peer, "failed:", error)
    client.close()
server.close()
print("served", served, "requests")
