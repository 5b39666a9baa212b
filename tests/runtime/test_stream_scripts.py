"""TCP scripts under ``pystack run`` on the simulated network (a subprocess each, as a user runs
them): the peer's TCP services, the stack's own loopback, and socket callbacks (setsockopt 20,
scheduled with micropython.schedule when data, a connection or a close arrives)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(source))
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MICROPYPATH": ".frozen",
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "pystack", "run", *options, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=tmp_path,
    )


def test_tcp_echo_and_daytime_of_the_simulated_peer(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """
        import socket
        s = socket.socket()
        s.connect(socket.getaddrinfo("peer.sim", 7)[0][-1])
        s.write(b"x" * 100000)
        print(len(s.read(100000)))
        s.close()
        d = socket.socket()
        d.connect(("10.0.0.1", 13))
        line = d.readline()
        print(line.endswith(b"-UTC\\r\\n"), d.read())
        d.close()
        """,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "100000\nTrue b''\n", "")


def test_a_script_serves_itself_over_the_stacks_loopback(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """
        import socket
        server = socket.socket()
        server.bind(("127.0.0.1", 8080))
        server.listen(1)
        client = socket.socket()
        client.setblocking(False)
        try:
            client.connect(("127.0.0.1", 8080))
        except OSError as error:
            print("connect:", error)
        conn, peer = server.accept()
        print("accepted from", peer[0])
        client.setblocking(True)
        client.write(b"hello\\n")
        print(conn.readline())
        conn.write(b"bye")
        conn.close()
        print(client.read())
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "connect: [Errno 115] EINPROGRESS",
        "accepted from 127.0.0.1",
        "b'hello\\n'",
        "b'bye'",
    ]


def test_socket_callbacks_fire_on_data_connections_and_datagrams(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """
        import socket, time
        seen = []
        def noted(s):
            seen.append(s)
        def wait(n):
            start = time.ticks_ms()
            while len(seen) < n and time.ticks_diff(time.ticks_ms(), start) < 5000:
                time.sleep_ms(1)
        server = socket.socket()
        server.bind(("127.0.0.1", 9000))
        server.listen(2)
        server.setsockopt(socket.SOL_SOCKET, 20, noted)
        client = socket.socket()
        client.connect(("127.0.0.1", 9000))
        wait(1)
        print("connection:", seen[-1] is server)
        conn, _ = server.accept()
        conn.setsockopt(socket.SOL_SOCKET, 20, noted)
        client.write(b"ping")
        wait(2)
        print("data:", seen[-1] is conn, conn.recv(10))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.SOL_SOCKET, 20, noted)
        u.sendto(b"echo me", ("10.0.0.1", 7))
        wait(3)
        print("datagram:", seen[-1] is u, u.recv(100))
        conn.setsockopt(socket.SOL_SOCKET, 20, None)
        client.write(b"more")
        time.sleep_ms(50)
        print("removed:", len(seen))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "connection: True",
        "data: True b'ping'",
        "datagram: True b'echo me'",
        "removed: 3",
    ]


def test_tcp_data_survives_loss_duplication_and_reordering_intact(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """
        import socket
        s = socket.socket()
        s.connect(("10.0.0.1", 80))
        s.write(b"GET /bytes/300000 HTTP/1.0\\r\\n\\r\\n")
        body = s.read().split(b"\\r\\n\\r\\n", 1)[1]
        s.close()
        print(len(body), body == bytes(i % 251 for i in range(300000)))
        e = socket.socket()
        e.connect(("10.0.0.1", 7))
        data = bytes(range(256)) * 800
        e.write(data)
        print(e.read(len(data)) == data)
        e.close()
        """,
        "--impair",
        "loss=3%,dup=1%,reorder=2%,delay=2ms",
        "--seed",
        "11",
    )
    assert (result.returncode, result.stdout) == (0, "300000 True\nTrue\n"), result.stderr
