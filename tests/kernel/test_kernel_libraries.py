"""Third-party MicroPython libraries, unmodified, under ``pystack run --link tun`` (issue 11).

The libraries are the ones tools/fetch_micropython_lib.py installs (the ``lib`` fixture of
tests/runtime/test_micropython_lib.py fetches them when missing): the Microdot web framework
serves a kernel-side ``curl``, and the asyncio MQTT client ``mqtt_async`` talks to a small MQTT
3.1.1 broker written below with CPython sockets and run in the namespace (the kernel side must
be a kernel program, so the simulated peer's broker cannot stand in). Without root these tests
skip; with ``PYSTACK_REQUIRE_KERNEL=1`` a skip is a failure.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers.kernel_bench import WAIT, Bench, wait_for
from tests.runtime.test_micropython_lib import lib  # noqa: F401  (the fixture)

PYSTACK = "10.0.0.2"
KERNEL = "10.0.0.1"

MICRODOT_APP = """
import asyncio
from microdot import Microdot

app = Microdot()

@app.route("/")
def index(request):  # a plain def handler: Microdot runs it in the event loop, as on a board
    return "plain def handler on " + request.headers.get("Host", "?")

@app.route("/shutdown")
def shutdown(request):
    request.app.shutdown()
    return "bye"

async def main():
    server = asyncio.create_task(app.start_server(host="0.0.0.0", port=5000))
    await asyncio.sleep(0.2)
    print("serving", flush=True)
    await server

asyncio.run(main())
"""


def _curl(bench: Bench, url: str) -> subprocess.CompletedProcess[str]:
    return bench.namespace.run(
        ["curl", "--silent", "--show-error", "--include", "--max-time", str(WAIT), url],
        check=False,
        timeout=WAIT * 2,
    )


def test_microdot_answers_curl_from_the_kernel_side(bench: Bench, lib: Path) -> None:  # noqa: F811
    script = bench.tmp_path / "app.py"
    script.write_text(MICRODOT_APP)
    (bench.tmp_path / "microdot").symlink_to(lib / "microdot")  # beside the script, on its path
    process, out, err = bench.pystack(
        "run", "--link", "tun", "--netns", bench.namespace.name, str(script)
    )
    wait_for(out, "^serving", process)
    answer = _curl(bench, f"http://{PYSTACK}:5000/")
    assert answer.returncode == 0, answer.stderr
    head, _, body = answer.stdout.partition("\n\n")  # text mode: CR LF reads as LF
    assert head.splitlines()[0] == "HTTP/1.0 200 OK", answer.stdout
    assert body == f"plain def handler on {PYSTACK}:5000"
    # the shutdown's answer starts; its body may be cut: asyncio.run ends with main() and
    # drops the request's task, as MicroPython's asyncio.run does
    assert _curl(bench, f"http://{PYSTACK}:5000/shutdown").stdout.startswith("HTTP/1.0 200 OK")
    assert process.wait(timeout=WAIT) == 0, err.read_text()
    assert err.read_text() == ""


# A minimal MQTT 3.1.1 broker (OASIS standard, sections 2 and 3): CONNECT/CONNACK,
# SUBSCRIBE/SUBACK, PUBLISH at QoS 0 and 1 (PUBACK), delivered to the matching subscriptions of
# every connection ("#" at the end of a filter matches the rest), PINGREQ/PINGRESP, DISCONNECT.
KERNEL_BROKER = """
import socket, sys, threading

lock = threading.Lock()
subscribers = []  # (connection, topic filter, granted qos)

def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data

def read_packet(conn):
    kind = read_exactly(conn, 1)[0]
    length, shift = 0, 0
    while True:
        byte = read_exactly(conn, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return kind, read_exactly(conn, length)

def packet(kind, body):
    length, encoded = len(body), b""
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([kind]) + encoded + body

def matches(topic_filter, topic):
    if topic_filter.endswith(b"#"):
        return topic.startswith(topic_filter[:-1])
    return topic_filter == topic

def serve(conn):
    try:
        while True:
            kind, body = read_packet(conn)
            if kind >> 4 == 1:  # CONNECT
                conn.sendall(packet(0x20, b"\\0\\0"))
                print("connect", flush=True)
            elif kind >> 4 == 8:  # SUBSCRIBE
                pid, rest, granted = body[:2], body[2:], b""
                while rest:
                    n = int.from_bytes(rest[:2], "big")
                    topic_filter, qos, rest = rest[2 : 2 + n], min(rest[2 + n], 1), rest[3 + n :]
                    with lock:
                        subscribers.append((conn, topic_filter, qos))
                    granted += bytes([qos])
                    print("subscribe", topic_filter.decode(), qos, flush=True)
                conn.sendall(packet(0x90, pid + granted))
            elif kind >> 4 == 3:  # PUBLISH
                qos = (kind >> 1) & 3
                n = int.from_bytes(body[:2], "big")
                topic = body[2 : 2 + n]
                payload = body[2 + n + (2 if qos else 0) :]
                if qos:
                    conn.sendall(packet(0x40, body[2 + n : 4 + n]))
                print("publish", topic.decode(), len(payload), qos, flush=True)
                with lock:
                    targets = [(c, q) for c, f, q in subscribers if matches(f, topic)]
                for target, granted in targets:
                    out_qos = min(qos, granted)
                    header = len(topic).to_bytes(2, "big") + topic + (b"\\0\\1" if out_qos else b"")
                    target.sendall(packet(0x30 | out_qos << 1, header + payload))
            elif kind >> 4 == 12:  # PINGREQ
                conn.sendall(packet(0xD0, b""))
            elif kind >> 4 == 14:  # DISCONNECT
                print("disconnect", flush=True)
                break
    except (EOFError, OSError):
        pass
    finally:
        with lock:
            subscribers[:] = [s for s in subscribers if s[0] is not conn]
        conn.close()

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", 1883))
listener.listen(4)
listener.settimeout(float(sys.argv[1]))
print("ready", flush=True)
while True:
    try:
        conn, _ = listener.accept()
    except socket.timeout:
        break
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

MQTT_ASYNC_CLIENT = """
import asyncio
from mqtt_async import MQTTClient, config

got = []

def heard(topic, msg, retained, qos):
    got.append((topic, len(msg), msg[:4], qos))

async def main():
    config.server = "10.0.0.1"
    config.ssid, config.wifi_pw = "pystack", "secret"
    config.subs_cb = heard
    client = MQTTClient(config)
    await client.connect()
    await client.subscribe("board/#", qos=1)
    await client.publish("board/small", "hello", qos=1)
    await client.publish("board/big", "x" * 3000)
    await client.publish("board/big", b"y" * 20000, qos=1)
    while len(got) < 3:
        await asyncio.sleep_ms(20)
    print(got)
    await client.disconnect()

asyncio.run(main())
"""


def test_mqtt_async_with_a_kernel_side_broker(bench: Bench, lib: Path) -> None:  # noqa: F811
    broker, broker_output = bench.kernel("kernel-broker", KERNEL_BROKER, str(WAIT))
    wait_for(broker_output, "^ready", broker)
    script = bench.tmp_path / "client.py"
    script.write_text(MQTT_ASYNC_CLIENT)
    (bench.tmp_path / "mqtt_async.py").symlink_to(lib / "mqtt_async.py")
    result = bench.pystack_run("--link", "tun", "--netns", bench.namespace.name, str(script))
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert result.stdout.splitlines()[-1] == (
        "[(b'board/small', 5, b'hell', 1), (b'board/big', 3000, b'xxxx', 0), "
        "(b'board/big', 20000, b'yyyy', 1)]"
    ), result.stdout
    log = wait_for(broker_output, "^disconnect", broker)
    assert "subscribe board/# 1" in log.splitlines()
    assert "publish board/big 20000 1" in log.splitlines()
