# A MicroPython HTTP/1.1 GET over a plain TCP socket: resolve the host, connect, send the
# request, read the status line, the headers and the body (by Content-Length, chunked, or to EOF).
#
#   http_get.py [URL]        default: http://example.com/json
#
# On the simulator (example.com and peer.sim are the peer 10.0.0.1, which runs an HTTP server):
#   pystack run --trace tools/examples/http_get.py
#   pystack run tools/examples/http_get.py http://peer.sim/bytes/5000
# On a TUN device in namespace NS, against a server on the kernel side (e.g. python3 -m http.server
# 8000 started with ip netns exec NS):
#   pystack run --link tun --netns NS tools/examples/http_get.py http://10.0.0.1:8000/
# Prints the status line, the headers, and the body (or its size when it is long).
import socket
import sys

URL = sys.argv[1] if len(sys.argv) > 1 else "http://example.com/json"


def parse_url(url):
    if not url.startswith("http://"):
        raise ValueError("only http:// URLs: " + url)
    rest = url[7:]
    host, _, path = rest.partition("/")
    port = 80
    if ":" in host:
        host, port = host.split(":", 1)
        port = int(port)
    return host, port, "/" + path


def read_chunked(s):
    body = b""
    while True:
        size = int(s.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while s.readline() not in (b"\r\n", b""):
                pass  # trailers
            return body
        body += s.read(size)
        s.readline()  # the CRLF after each chunk


host, port, path = parse_url(URL)
address = socket.getaddrinfo(host, port)[0][-1]
print("connecting to", host, address)
s = socket.socket()
s.connect(address)
s.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host))
status = s.readline().decode().strip()
print(status)
headers = {}
while True:
    line = s.readline()
    if line in (b"\r\n", b""):
        break
    name, _, value = line.decode().partition(":")
    headers[name.strip().lower()] = value.strip()
    print(line.decode().strip())
if headers.get("transfer-encoding", "").lower() == "chunked":
    body = read_chunked(s)
elif "content-length" in headers:
    body = s.read(int(headers["content-length"]))
else:
    body = s.read()  # to EOF
s.close()
print()
print(body.decode() if len(body) <= 512 else str(len(body)) + " bytes of body")
