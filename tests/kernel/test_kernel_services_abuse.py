"""``pystack up --serve`` under abuse from the Linux kernel side, over TUN, in a namespace per
test: legitimate clients are served while slowloris clients, abandoned TLS handshakes and an
idle MQTT CONNECT flood hold more connections than the services have slots (64 each).

Each attack is bounded: 100 slow clients for a few seconds, 100 abandoned handshakes per TLS
port, 70 idle CONNECTs; every socket has a timeout, and the ``bench`` fixture stops what it
started. The attack and the legitimate clients are one kernel-side program per test.
"""

from __future__ import annotations

import signal

from tests.helpers.kernel_bench import ROOT, WAIT, Bench, wait_for

PYSTACK = "10.0.0.2"
CA = ROOT / "pystack" / "services" / "certs" / "ca.pem"

SLOWLORIS = """
    import socket, sys, time
    host, count = sys.argv[1], int(sys.argv[2])
    head = b"GET /json HTTP/1.1\\r\\nHost: peer.sim\\r\\nX-Padding: " + b"a" * 4000
    def slow():
        try:
            s = socket.create_connection((host, 80), timeout=5)
        except OSError:
            return [None, 0]  # (refused: tried again at the next byte)
        s.setblocking(False)
        return [s, 0]
    def trickle(clients):  # one more byte each; reconnect those the server dropped
        for entry in clients:
            s, sent = entry
            if s is None:
                entry[:] = slow()
                continue
            try:
                if s.recv(65536) == b"":
                    raise ConnectionError
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                entry[:] = slow()
                continue
            try:
                s.send(head[sent % len(head) : sent % len(head) + 1])
                entry[1] = sent + 1
            except OSError:
                s.close()
                entry[:] = slow()
    def get_json():
        with socket.create_connection((host, 80), timeout=5) as s:
            s.sendall(b"GET /json HTTP/1.1\\r\\nHost: peer.sim\\r\\nConnection: close\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.split(b" ", 2)[1].decode() if data else "none"
    clients = [slow() for _ in range(count)]
    statuses = []
    for attempt in range(4):
        for _ in range(2):
            trickle(clients)
            time.sleep(1.0)
        statuses.append(get_json())
    print("statuses", " ".join(statuses), flush=True)
"""

ABANDONED_HANDSHAKES = """
    import socket, ssl, sys
    host, ca, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = ssl.create_default_context(cafile=ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        context.wrap_bio(incoming, outgoing, server_hostname="peer.sim").do_handshake()
    except ssl.SSLWantReadError:
        hello = outgoing.read()
    abandoned = []
    for port in (443, 8443):
        for _ in range(count):  # a ClientHello, then nothing: never read, never finished
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(hello)
            abandoned.append(s)
    print("abandoned", len(abandoned), flush=True)
    raw = socket.create_connection((host, 443), timeout=5)
    with context.wrap_socket(raw, server_hostname="peer.sim") as tls:
        tls.sendall(b"still served\\n")
        echoed = b""
        while len(echoed) < 13:
            echoed += tls.recv(100)
        print("echo", echoed, flush=True)
    raw = socket.create_connection((host, 8443), timeout=5)
    with context.wrap_socket(raw, server_hostname="peer.sim") as tls:
        tls.sendall(b"GET /json HTTP/1.1\\r\\nHost: peer.sim\\r\\nConnection: close\\r\\n\\r\\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        print("https", data.split(b" ", 2)[1].decode(), flush=True)
"""

MQTT_FLOOD = """
    import socket, sys
    host, count = sys.argv[1], int(sys.argv[2])
    def string(text):
        return len(text).to_bytes(2, "big") + text
    def packet(kind, body):
        return bytes([kind, len(body)]) + body
    def read(s, size):
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {data!r}")
            data += chunk
        return data
    def connect(client_id, keepalive):
        s = socket.create_connection((host, 1883), timeout=5)
        header = string(b"MQTT") + bytes([4, 2]) + keepalive.to_bytes(2, "big")
        s.sendall(packet(0x10, header + string(client_id)))
        assert read(s, 4) == b"\\x20\\x02\\x00\\x00", "connack"
        return s
    subscriber = connect(b"legit-subscriber", 60)
    subscriber.sendall(packet(0x82, b"\\x00\\x01" + string(b"legit/#") + b"\\x00"))
    assert read(subscriber, 5)[:1] == b"\\x90", "suback"
    flood = [connect(b"idle-%d" % number, 0) for number in range(count)]
    print("flood", len(flood), flush=True)
    publisher = connect(b"legit-publisher", 60)
    publisher.sendall(packet(0x30, string(b"legit/t") + b"through the flood"))
    publish = read(subscriber, 2)
    body = read(subscriber, publish[1])
    print("got", body[2 : 2 + int.from_bytes(body[:2], "big")], body[9:], flush=True)
"""


def _serve(bench: Bench) -> None:
    up, _, err = bench.pystack(
        "up", "--link", "tun", "--netns", bench.namespace.name,
        "--serve", "http,https,tlsecho,mqtt", "--duration", str(WAIT * 3),
    )  # fmt: skip
    wait_for(err, r"is up", up)


def _stop(bench: Bench) -> None:
    up = bench.processes[-1]
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=WAIT) == 128 + signal.SIGTERM  # the conventional status


def test_get_json_is_served_while_slowloris_clients_hold_every_http_slot(bench: Bench) -> None:
    _serve(bench)
    result = bench.kernel_run(SLOWLORIS, PYSTACK, "100")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "statuses 200 200 200 200\n"
    _stop(bench)


def test_tls_clients_are_served_while_handshakes_are_abandoned(bench: Bench) -> None:
    _serve(bench)
    result = bench.kernel_run(ABANDONED_HANDSHAKES, PYSTACK, str(CA), "100")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "abandoned 200\necho b'still served\\n'\nhttps 200\n"
    _stop(bench)


def test_a_legitimate_mqtt_client_survives_an_idle_connect_flood(bench: Bench) -> None:
    _serve(bench)
    result = bench.kernel_run(MQTT_FLOOD, PYSTACK, "70")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "flood 70\ngot b'legit/t' b'through the flood'\n"
    _stop(bench)
