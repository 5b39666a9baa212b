"""TCP scripts under ``pystack run --link tun`` against the Linux kernel, in a namespace per test.

The MicroPython examples in tools/examples run unmodified: the web server answers ``curl`` on the
kernel side, the HTTP client fetches a file from CPython's ``http.server``, and the poll-driven
echo server serves 50 kernel clients connected at the same time. Every wait is bounded; the
``bench`` fixture stops what it started and checks that nothing is left behind.
"""

from __future__ import annotations

import signal
import sys
import textwrap

import pytest

from tests.helpers.kernel_bench import ROOT, WAIT, Bench, wait_for

EXAMPLES = ROOT / "tools" / "examples"
CERTS = ROOT / "pystack" / "services" / "certs"
PYSTACK = "10.0.0.2"
KERNEL = "10.0.0.1"

KERNEL_CLIENTS = """
    import socket, sys, time
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sockets = []
    for number in range(count):  # all connected before any sends: count clients at once
        s = socket.create_connection((host, port), timeout=10)
        sockets.append(s)
    print("connected", len(sockets), flush=True)
    for number, s in enumerate(sockets):
        s.sendall(b"client %d says hello\\n" % number * (number + 1))
    for number, s in enumerate(sockets):
        want = b"client %d says hello\\n" % number * (number + 1)
        got = b""
        while len(got) < len(want):
            data = s.recv(65536)
            if not data:
                break
            got += data
        if got != want:
            sys.exit(f"client {number}: got {len(got)} bytes, wanted {len(want)}")
    for s in sockets:
        s.close()
    print("all echoed", len(sockets), flush=True)
"""


KERNEL_TLS_ECHO = """
    import socket, ssl, sys
    certs, port = sys.argv[1], int(sys.argv[2])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs + "/server.pem", certs + "/server.key")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1)
    listener.settimeout(20)
    print("ready", flush=True)
    raw, _ = listener.accept()
    raw.settimeout(20)
    with context.wrap_socket(raw, server_side=True) as tls:
        print("handshake", tls.version(), flush=True)
        while data := tls.recv(4096):
            tls.sendall(data)
    print("closed", flush=True)
"""
KERNEL_TLS_CLIENT = """
    import socket, ssl, sys
    ca, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False  # the script's certificate names peer.sim, not 10.0.0.2
    with socket.create_connection((host, port), timeout=20) as raw:
        with context.wrap_socket(raw) as tls:
            print("verified", tls.version(), flush=True)
            tls.sendall(b"hello from the kernel\\n")
            reply = b""
            while not reply.endswith(b"\\n"):
                data = tls.recv(100)
                if not data:
                    break
                reply += data
            print("reply", reply.decode().strip(), flush=True)
"""
SCRIPT_TLS_SERVER = """
    import socket, ssl, sys
    certs = sys.argv[1]
    cert = open(certs + "/server.pem", "rb").read()
    key = open(certs + "/server.key", "rb").read()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 4443))
    server.listen(1)
    print("listening", flush=True)
    conn, peer = server.accept()
    tls = ssl.wrap_socket(conn, server_side=True, cert=cert, key=key)
    line = tls.readline()
    tls.write(b"script got: " + line)
    tls.close()
    server.close()
    print("served", line)
"""


def _run_options(bench: Bench, link: str = "tun") -> tuple[str, ...]:
    return ("--link", link, "--netns", bench.namespace.name)


def test_curl_on_the_kernel_side_gets_pages_from_the_scripts_web_server(bench: Bench) -> None:
    server, out, err = bench.pystack(
        "run", *_run_options(bench), str(EXAMPLES / "web_server.py"), "8080", "3", str(WAIT)
    )
    wait_for(out, "^listening on port 8080", server)
    pages = []
    for path in ("/", "/", "/missing"):
        fetched = bench.namespace.run(
            [
                "curl",
                "-s",
                "-S",
                "-m",
                "10",
                "-w",
                "\\n%{http_code}",
                f"http://{PYSTACK}:8080{path}",
            ],
            check=False,
            timeout=WAIT,
        )
        assert fetched.returncode == 0, fetched.stderr
        pages.append(fetched.stdout)
    assert server.wait(timeout=WAIT) == 0, err.read_text()
    assert "Request number 1." in pages[0] and pages[0].endswith("\n200")
    assert "Request number 2." in pages[1] and pages[1].endswith("\n200")
    assert pages[2] == "not found\n\n404"
    lines = out.read_text().splitlines()
    assert lines[-1] == "served 3 requests"
    assert [line.split(" to ")[0] for line in lines[1:4]] == [
        "served /",
        "served /",
        "served /missing",
    ]


@pytest.mark.parametrize("link", ["tun", "tap"])
def test_script_fetches_a_file_from_a_kernel_http_server(bench: Bench, link: str) -> None:
    www = bench.tmp_path / "www"
    www.mkdir()
    body = "".join(f"line {n} of a file served by CPython's http.server\n" for n in range(400))
    (www / "big.txt").write_text(body)
    (www / "small.txt").write_text("hello from the kernel side\n")
    server = bench.namespace.popen(
        [sys.executable, "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", str(www)],
        stdout=bench._open(bench.tmp_path / "http-server.txt"),
        stderr=bench._open(bench.tmp_path / "http-server-err.txt"),
    )
    try:
        small = bench.pystack_run(
            *_run_options(bench, link),
            str(EXAMPLES / "http_get.py"),
            f"http://{KERNEL}:8000/small.txt",
        )
        assert small.returncode == 0, small.stdout + small.stderr
        assert "HTTP/1.0 200 OK" in small.stdout
        assert small.stdout.endswith("\nhello from the kernel side\n\n")
        script = bench.tmp_path / "fetch_exact.py"
        script.write_text(
            textwrap.dedent(
                """
                import socket, sys
                s = socket.socket()
                s.connect(socket.getaddrinfo(sys.argv[1], 8000)[0][-1])
                s.write(b"GET /big.txt HTTP/1.0\\r\\n\\r\\n")
                data = s.read()
                s.close()
                head, _, body = data.partition(b"\\r\\n\\r\\n")
                open(sys.argv[2], "wb").write(body)
                print(head.split(b"\\r\\n")[0].decode(), len(body))
                """
            )
        )
        copy = bench.tmp_path / "copy.txt"
        big = bench.pystack_run(*_run_options(bench, link), str(script), KERNEL, str(copy))
        assert big.returncode == 0, big.stdout + big.stderr
        assert big.stdout.strip() == f"HTTP/1.0 200 OK {len(body)}"
        assert copy.read_text() == body
    finally:
        server.terminate()
        server.wait(timeout=5)


def test_poll_echo_server_serves_fifty_kernel_clients_at_once(bench: Bench) -> None:
    server, out, err = bench.pystack(
        "run",
        *_run_options(bench),
        str(EXAMPLES / "tcp_echo_poll_server.py"),
        "7007",
        "50",
        str(WAIT),
    )
    wait_for(out, "^echo server on port 7007", server)
    clients = bench.kernel_run(KERNEL_CLIENTS, PYSTACK, "7007", "50")
    assert clients.returncode == 0, clients.stdout + clients.stderr
    assert clients.stdout.splitlines() == ["connected 50", "all echoed 50"]
    assert server.wait(timeout=WAIT) == 0, err.read_text()
    summary = out.read_text().splitlines()[-1]
    expected = sum(len(b"client %d says hello\n" % n) * (n + 1) for n in range(50))
    assert summary == f"served 50 clients, at most 50 at once, echoed {expected} bytes"


def test_script_tls_client_verifies_and_talks_to_a_kernel_tls_server(bench: Bench) -> None:
    server, server_output = bench.kernel("kernel-tls", KERNEL_TLS_ECHO, str(CERTS), "4443")
    wait_for(server_output, "^ready", server)
    result = bench.pystack_run(
        *_run_options(bench),
        str(EXAMPLES / "tls_client.py"),
        KERNEL,
        "4443",
        str(CERTS / "ca.pem"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"connected to {KERNEL} ('{KERNEL}', 4443) with ('TLS-")
    assert lines[1:] == [
        "echo b'hello over TLS 0\\n'",
        "echo b'hello over TLS 1\\n'",
        "echo b'hello over TLS 2\\n'",
        "echoed 3 of 3 lines",
    ]
    assert wait_for(server_output, "^closed", server).splitlines()[1] == "handshake TLSv1.2"


def test_kernel_tls_client_verifies_and_talks_to_a_script_tls_server(bench: Bench) -> None:
    script = bench.tmp_path / "tls_server.py"
    script.write_text(textwrap.dedent(SCRIPT_TLS_SERVER))
    server, out, err = bench.pystack("run", *_run_options(bench), str(script), str(CERTS))
    wait_for(out, "^listening", server)
    client = bench.kernel_run(KERNEL_TLS_CLIENT, str(CERTS / "ca.pem"), PYSTACK, "4443")
    assert client.returncode == 0, client.stdout + client.stderr
    assert client.stdout.splitlines() == [
        "verified TLSv1.2",
        "reply script got: hello from the kernel",
    ]
    assert server.wait(timeout=WAIT) == 0, err.read_text()
    assert out.read_text().splitlines()[-1] == "served b'hello from the kernel\\n'"


KERNEL_LINE_CLIENTS = """
    import socket, sys
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sockets = [socket.create_connection((host, port), timeout=10) for _ in range(count)]
    for number, s in enumerate(sockets):
        s.sendall(b"line %d from the kernel\\n" % number)
    for number, s in enumerate(sockets):
        reply = s.makefile("rb").readline()
        if reply != b"line %d from the kernel\\n" % number:
            sys.exit(f"client {number}: {reply!r}")
        s.close()
    print("echoed", count, flush=True)
"""


def test_asyncio_echo_server_example_serves_kernel_clients(bench: Bench) -> None:
    server, out, err = bench.pystack(
        "run",
        *_run_options(bench),
        str(EXAMPLES / "asyncio_echo_server.py"),
        "7008",
        "5",
        str(WAIT),
    )
    wait_for(out, "^asyncio echo server on port 7008", server)
    clients = bench.kernel_run(KERNEL_LINE_CLIENTS, PYSTACK, "7008", "5")
    assert clients.returncode == 0, clients.stdout + clients.stderr
    assert clients.stdout == "echoed 5\n"
    assert server.wait(timeout=WAIT) == 0, err.read_text()
    lines = out.read_text().splitlines()
    assert len([line for line in lines if line.startswith("client ")]) == 5
    assert (
        lines[-1]
        == f"served 5 clients, echoed {sum(len(f'line {n} from the kernel') + 1 for n in range(5))} bytes"
    )


def test_curl_and_kernel_clients_use_pystack_up_serving_http_https_and_mqtt(bench: Bench) -> None:
    """The simulated peer's services, on a real device: curl over HTTP and HTTPS (verifying
    the test CA, as the README shows), and a CPython MQTT exchange with the broker."""
    up, _, err = bench.pystack(
        "up", "--link", "tun", "--netns", bench.namespace.name,
        "--serve", "http,https,mqtt", "--duration", str(WAIT * 2),
    )  # fmt: skip
    wait_for(err, r"is up", up)
    plain = bench.namespace.run(
        ["curl", "-s", "-S", "-m", "10", f"http://{PYSTACK}/bytes/100000", "-o", "/dev/null",
         "-w", "%{http_code} %{size_download}"],
        check=False, timeout=WAIT,
    )  # fmt: skip
    assert plain.stdout == "200 100000", plain.stderr
    secure = bench.namespace.run(
        ["curl", "-s", "-S", "-m", "10", "--cacert", str(CERTS / "ca.pem"),
         "--resolve", f"peer.sim:8443:{PYSTACK}", "https://peer.sim:8443/json"],
        check=False, timeout=WAIT,
    )  # fmt: skip
    assert secure.returncode == 0 and '"server": "pystack"' in secure.stdout, secure.stderr
    mqtt = bench.kernel_run(KERNEL_MQTT, PYSTACK)
    assert (mqtt.returncode, mqtt.stdout) == (0, "suback 1\ngot b'kernel/t' b'hi'\n"), mqtt.stderr
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=WAIT) == 128 + signal.SIGTERM  # the conventional status


KERNEL_MQTT = """
    import socket, sys
    def packet(kind, body):
        return bytes([kind, len(body)]) + body
    def string(text):
        return len(text).to_bytes(2, "big") + text
    s = socket.create_connection((sys.argv[1], 1883), timeout=10)
    s.sendall(packet(0x10, string(b"MQTT") + b"\\x04\\x02\\x00\\x3c" + string(b"kernel")))
    assert s.recv(4) == b"\\x20\\x02\\x00\\x00", "connack"
    s.sendall(packet(0x82, b"\\x00\\x01" + string(b"kernel/#") + b"\\x01"))
    suback = s.recv(5)
    print("suback", suback[4], flush=True)
    s.sendall(packet(0x30, string(b"kernel/t") + b"hi"))
    publish = s.recv(100)
    topic_length = int.from_bytes(publish[2:4], "big")
    print("got", publish[4 : 4 + topic_length], publish[4 + topic_length :], flush=True)
    s.sendall(b"\\xe0\\x00")
    s.close()
"""
